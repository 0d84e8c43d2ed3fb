//! An SDE declared with `sde!` outside the built-ins, shared by the tests that need "an
//! SDE declared in the test": a VP-type SDE with a quadratic β (closed forms throughout,
//! a kernel no built-in has). The including crate needs `extern crate sbdm_runtime as sbdm;`.

use sbdm_runtime::sde;

sde! {
    /// Quadratic β: β(t) = b0 + b2·t².
    pub struct QuadBeta {
        params { b0: f64 = 0.1, b2: f64 = 30.0 }
        time = [1e-3, 1.0];
        let beta = b0 + b2 * t * t;
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}
