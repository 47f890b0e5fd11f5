//! Stack files built from fuzzer-chosen pieces of the real format (sometimes misspelled or
//! wrong), so that inputs reach the semantic rules and the planner, not only TOML syntax errors.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    if let Ok(source) = hermes_infra_fuzz::structured::stack(&mut u) {
        hermes_infra_fuzz::check(&source);
    }
});
