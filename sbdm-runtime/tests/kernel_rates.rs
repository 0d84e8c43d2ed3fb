//! The kernel's rates `ȧ = da/dt` and `ḃ = db/dt` (derived in closed form where `a`, `b`
//! are closed, else from `F` and `g²` numerically) against central differences of `a` and
//! `b`, on every named SDE, on SDEs declared in the test (closed and numeric kernels) and
//! and in closed form for rectified flow, where `F` and `g²` diverge at
//! `t = 1` but `ȧ = −1` and `ḃ = 1` do not.

// Generated code names `::sbdm::__private`.
extern crate sbdm_runtime as sbdm;

use sbdm_runtime::sde::builtin::RectifiedFlow;
use sbdm_runtime::sde::{named, GaussianKernel};

#[path = "common/declared.rs"]
mod declared;
use declared::QuadBeta;

sbdm_runtime::sde! {
    /// A numeric kernel: β(t) = 0.1 + 19.9·t + sin(t), whose ∫ F has no closed form here.
    pub struct Wiggly {
        time = [1e-3, 1.0];
        let beta = 0.1 + 19.9 * t + (t * t).sin();
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

/// The largest relative gap between the rates and central differences of `a`, `b`.
fn worst_gap(sde: &dyn GaussianKernel) -> f64 {
    let (t0, t1) = sde.time_range();
    let mut worst: f64 = 0.0;
    for i in 1..20 {
        let t = t0 + (t1 - t0) * i as f64 / 20.0;
        let h = 1e-5 * (t1 - t0);
        let fd_a = (sde.mean_coef(t + h) - sde.mean_coef(t - h)) / (2.0 * h);
        let fd_b = (sde.std(t + h) - sde.std(t - h)) / (2.0 * h);
        for (got, want) in [(sde.mean_coef_dt(t), fd_a), (sde.std_dt(t), fd_b)] {
            worst = worst.max((got - want).abs() / want.abs().max(1.0));
        }
    }
    worst
}

#[test]
fn rates_match_differences_of_the_kernel() {
    // Central differences at h = 1e-5·T have error ~h²·|a'''| + ε/h ≈ 1e-9 here; the
    // numeric kernels (quadrature to ~1e-12) add ~1e-7 through ε/h.
    for entry in named::ALL.iter() {
        let sde = named::by_name(entry.name).unwrap();
        let gap = worst_gap(sde.as_ref());
        assert!(gap < 1e-5, "{}: rates off by {gap}", entry.name);
    }
    for (name, gap) in [
        ("QuadBeta", worst_gap(&QuadBeta::default())),
        ("Wiggly (numeric a, b)", worst_gap(&Wiggly)),
    ] {
        assert!(gap < 1e-5, "{name}: rates off by {gap}");
    }
    const { assert!(!Wiggly::CLOSED_FORM, "Wiggly was meant to need quadrature") };
    assert!(worst_gap(&RectifiedFlow) < 1e-6);
}

#[test]
fn rectified_flow_rates_are_closed_and_finite_where_the_drift_is_not() {
    let rf = RectifiedFlow;
    for t in [0.001, 0.5, 0.999, 1.0] {
        assert_eq!((rf.mean_coef_dt(t), rf.std_dt(t)), (-1.0, 1.0), "t = {t}");
    }
    // At t = 1 the drift F = −1/(1 − t) is singular; ȧ and ḃ are not.
    assert!(!sbdm_runtime::Sde::drift_coef(&rf, 1.0).is_finite());
}
