//! Any bytes: loading weights returns weights or an error, never panics or over-allocates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tms::output::weights::Weights;
use tms::pipeline::analyze_weights;

fuzz_target!(|data: &[u8]| {
    if let Ok(w) = Weights::from_bytes(data) {
        // Small enough to analyse quickly: run the whole analysis on it too.
        if w.instances * w.features * w.hidden <= 4096 && w.features <= 64 {
            let _ = analyze_weights(w);
        }
    }
});
