//! Pins the compile errors users see for servicers of the wrong shape.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
