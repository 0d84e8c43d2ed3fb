//! Errors, measured convergence orders and the mixture they are measured on (included
//! with `#[path = "common/orders.rs"] mod orders;` by the tests that fit them).

use candle_core::Tensor;
use sbdm_runtime::model::mixture::GaussianMixture;

/// Three unequal, unevenly weighted 2-D components: the data of the order tests.
pub fn three_components() -> GaussianMixture {
    GaussianMixture::new(
        vec![0.3, 0.5, 0.2],
        vec![vec![-1.5, 0.5], vec![1.0, 1.0], vec![0.5, -1.5]],
        vec![0.3, 0.5, 0.4],
    )
    .unwrap()
}

/// `max |a − b|` of two f64 tensors.
pub fn max_abs(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Minus the least-squares slope of ln(err) against ln(n).
pub fn order(ns: &[usize], errs: &[f64]) -> f64 {
    let xs: Vec<f64> = ns.iter().map(|n| (*n as f64).ln()).collect();
    let ys: Vec<f64> = errs.iter().map(|e| e.ln()).collect();
    let k = xs.len() as f64;
    let (mx, my) = (xs.iter().sum::<f64>() / k, ys.iter().sum::<f64>() / k);
    let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
    -sxy / sxx
}
