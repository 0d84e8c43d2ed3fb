//! Compile-fail UI tests of the `sde!` macro: one `tests/ui/<mistake>.rs` per family of
//! mistakes, each with the compiler's output in the `.stderr` beside it. Regenerate the
//! `.stderr` files with `TRYBUILD=overwrite cargo test -p sbdm-macros --test ui`, then
//! check by eye that every error sits under the offending tokens.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
