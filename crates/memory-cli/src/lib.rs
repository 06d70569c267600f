//! The library behind the `memory` command: store locations, the JSON Lines export format
//! with its streaming export and batched import. The binary (`src/main.rs`) is a thin
//! clap front end; `docs/CLI.md` documents the commands and exit codes.

pub mod check;
pub mod jsonl;
pub mod location;
pub mod migrate;
pub mod serve;
