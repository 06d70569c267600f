//! Any URL and token give a valid configuration or a typed `InvalidInput` naming the URL,
//! never a panic; the token never shows in the configuration's `Debug`.
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
            if token.trim().len() >= 8 && !url.contains(token) {
                assert!(!format!("{config:?}").contains(token));
            }
        }
        Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}"),
    }
});
