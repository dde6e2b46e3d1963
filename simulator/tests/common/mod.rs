//! Helpers the engine's theory tests share.

/// `got` within the relative tolerance `tol` of `want`; prints both.
pub fn within(what: &str, got: f64, want: f64, tol: f64) {
    let err = (got / want - 1.0).abs();
    eprintln!(
        "{what}: simulated {got:.5}, theory {want:.5}, {:+.2}%",
        (got / want - 1.0) * 100.0
    );
    assert!(
        err <= tol,
        "{what}: simulated {got:.5}, theory {want:.5} ({:.2}% off)",
        err * 100.0
    );
}
