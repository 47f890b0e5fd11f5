//! Arbitrary bytes, as text, into the stack loader (default environment and `prod`), then into
//! the planner when the stack loads. See `hermes_infra_fuzz::check` for the invariants.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hermes_infra_fuzz::check(&hermes_infra_fuzz::text(data));
});
