//! The real sqld every server test starts (shared with the benches).

pub use memory_test_sqld::Sqld;
