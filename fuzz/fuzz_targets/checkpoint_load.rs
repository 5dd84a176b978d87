//! Any bytes: reading a checkpoint returns one or an error, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tms::output::checkpoint::Checkpoint;

fuzz_target!(|data: &[u8]| {
    let _ = Checkpoint::from_bytes(data);
});
