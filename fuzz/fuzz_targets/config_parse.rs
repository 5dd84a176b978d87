//! Any text: parsing and validating a config returns a value or an error, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tms::config::{locate, TrainConfig};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = TrainConfig::from_toml_validated(text, "fuzz.toml") {
            let _ = e.to_string();
            let _ = locate(text, "fuzz.toml", &e.field);
        }
    }
});
