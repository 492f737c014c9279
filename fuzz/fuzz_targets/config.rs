//! Configuration parsing and validation, TOML and `mcpServers` JSON: any input gives a
//! configuration or a list of errors with paths, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(error) = mcp_warden::Config::from_toml_str(text) {
        assert!(!error.issues.is_empty());
    }
    let _ = mcp_warden::config::mcp_json::parse(text);
});
