//! Any URL and token give a valid configuration or a typed `InvalidInput` naming the URL,
//! never a panic; the token has no influence on the configuration's `Debug` (it is
//! redacted, whatever it is).
#![no_main]

use libfuzzer_sys::fuzz_target;
use memory_core::ErrorKind;
use memory_storage_turso::TursoConfig;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (url, token) = text.split_once('\u{0}').unwrap_or((&text, ""));
    match TursoConfig::from_vars(Some(url), Some(token)) {
        Ok(config) => {
            assert!(config.validate().is_ok());
            let other = TursoConfig::from_vars(Some(url), Some("another token"))
                .expect("the token does not decide validity");
            if !token.is_empty() {
                assert_eq!(format!("{config:?}"), format!("{other:?}"));
            }
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
            assert!(e.to_string().contains("location.url"), "{e}");
        }
    }
});
