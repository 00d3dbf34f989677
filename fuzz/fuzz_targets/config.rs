//! `Config::from_toml` on arbitrary text: never panics, and a config it
//! accepts can be displayed.
#![no_main]

use latch::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = Config::from_toml(text) {
        let _ = config.to_string();
    }
});
