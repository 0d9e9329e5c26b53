#![no_main]
//! Fuzzes the `grafana_matchers` check of `tests/fuzz_checks` (what it holds is
//! documented there; `cargo test --test properties` runs the same check
//! with proptest and on every saved regression input).

#[path = "../../tests/fuzz_checks/mod.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check_by_target("grafana_matchers", data));
