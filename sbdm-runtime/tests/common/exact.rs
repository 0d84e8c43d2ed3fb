//! Comparisons with exact samples of the mixture oracle (included with
//! `#[path = "common/exact.rs"] mod exact;` by the sampler tests that use them).

use candle_core::{DType, Device, Tensor};
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::report::metrics::sliced_w2;
use sbdm_runtime::sde::GaussianKernel;

/// Sliced-W2 of `x` to exact samples of `law` at time `t` over the floor of two exact
/// sets, both averaged over 4 reference sets.
pub fn w2_ratio(law: &GaussianMixture, sde: &dyn GaussianKernel, t: f64, x: &Tensor) -> f64 {
    let n = x.dim(0).unwrap();
    let x = x.to_dtype(DType::F32).unwrap();
    let (mut num, mut den) = (0.0, 0.0);
    for r in 0..4u64 {
        let e = law.sample_at(&sde, t, n, 100 + r, &Device::Cpu).unwrap();
        let f = law.sample_at(&sde, t, n, 200 + r, &Device::Cpu).unwrap();
        num += sliced_w2(&x, &e, 64, 7).unwrap();
        den += sliced_w2(&f, &e, 64, 7).unwrap();
    }
    num / den
}

/// The per-coordinate means of `x` `[N, D]` and their standard errors.
pub fn means(x: &Tensor) -> Vec<(f64, f64)> {
    let v = x.to_dtype(DType::F64).unwrap().to_vec2::<f64>().unwrap();
    let n = v.len() as f64;
    (0..v[0].len())
        .map(|j| {
            let m = v.iter().map(|r| r[j]).sum::<f64>() / n;
            let var = v.iter().map(|r| (r[j] - m).powi(2)).sum::<f64>() / (n - 1.0);
            (m, (var / n).sqrt())
        })
        .collect()
}
