#![no_main]
//! libFuzzer entry point; the target itself lives in shared/tests/fuzz_targets/mod.rs so
//! that the stable smoke driver (shared/tests/fuzz_smoke.rs) runs exactly the same code.

use libfuzzer_sys::fuzz_target;

#[path = "../../shared/tests/fuzz_targets/mod.rs"]
mod targets;

fuzz_target!(|data: &[u8]| targets::op_parser(data));
