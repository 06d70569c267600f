//! Tests that run this test binary again as another process, against a store named by a
//! target string (`file:PATH` for a local file, else a server URL).

#![allow(dead_code)] // each test uses what it needs

use memory_storage_turso::TursoConfig;

/// The store a target string names: `file:PATH` is a local file, anything else a server.
pub fn config(target: &str) -> TursoConfig {
    match target.strip_prefix("file:") {
        Some(path) => TursoConfig::local(path),
        None => TursoConfig::remote(target, None),
    }
}

/// The arguments that run only the ignored test `name` of this binary, printing its output.
pub fn child_args(name: &str) -> [&str; 5] {
    [
        "--ignored",
        "--exact",
        name,
        "--nocapture",
        "--test-threads=1",
    ]
}
