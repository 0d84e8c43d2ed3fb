//! Sampling from pure noise (kernels with a(T) = 0) against the exact law: the start
//! `x_T = b(T)·ε` and the every-sampler check (included with
//! `#[path = "common/from_pure_noise.rs"] mod from_pure_noise;` by the tests that use it).

use candle_core::{DType, Device, Tensor};
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::sampling::noise::Noise;
use sbdm_runtime::sampling::{Sampler, TimeGrid};
use sbdm_runtime::sde::GaussianKernel;

/// `n` draws of the prior `x_T = b(T)·ε` in 2-D (f64, seed 9).
pub fn start<S: GaussianKernel + ?Sized>(sde: &S, n: usize) -> Tensor {
    let mut noise = Noise::new(9, 0, n, &[2], &Device::Cpu);
    (noise.draw().unwrap().to_dtype(DType::F64).unwrap() * sde.prior_std()).unwrap()
}

/// Every sampler from `x_T = b(T)·ε` at `grid`'s first time, with the exact oracle of
/// `mix` (`GaussianMixture::model`: x̂_0 where a(T) = 0), stays finite and reaches the
/// exact `E|x|²` at the grid's last time within 5 standard errors of the sample plus 2 %
/// (the discretisation bias allowed at the grid sizes used).
pub fn every_sampler_reaches_the_exact_second_moment(
    name: &str,
    sde: &dyn GaussianKernel,
    mix: &GaussianMixture,
    grid: &TimeGrid,
    n: usize,
) {
    let model = mix.model(sde);
    let x_t = start(sde, n);
    let ts = grid.times(sde).unwrap();
    let t0 = ts[ts.len() - 1];
    let a0 = sde.mean_coef(t0);
    let exact = a0 * a0 * mix.second_moment() + 2.0 * sde.variance(t0);
    for sampler in Sampler::ALL {
        let mut noise = Noise::new(1, 0, n, &[2], &Device::Cpu);
        let x = sampler
            .sample(&sde, &model, &x_t, grid, &mut noise)
            .unwrap_or_else(|e| panic!("{name} {sampler}: {e}"))
            .x;
        let sq = x.sqr().unwrap().sum(1).unwrap();
        let m = sq.mean_all().unwrap().to_scalar::<f64>().unwrap();
        let m2 = sq
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        let se = (m2 - m * m).sqrt() / (n as f64).sqrt();
        println!("{name} {sampler}: E|x|² = {m:.4} (exact {exact:.4}, s.e. {se:.4})");
        assert!(m.is_finite(), "{name} {sampler}: E|x|² = {m}");
        assert!(
            (m - exact).abs() < 5.0 * se + 0.02 * exact,
            "{name} {sampler}: E|x|² = {m} vs exact {exact} (s.e. {se})"
        );
    }
}

/// An ε-prediction model (its output is irrelevant here: zeros).
pub struct ZeroEps;

impl sbdm_runtime::model::ScoreModel for ZeroEps {
    fn prediction(&self) -> sbdm_runtime::model::prediction::Prediction {
        sbdm_runtime::model::prediction::Prediction::Eps
    }
    fn forward(
        &self,
        x: &Tensor,
        _: &Tensor,
        _: &sbdm_runtime::model::Condition,
    ) -> sbdm_runtime::error::Result<Tensor> {
        Ok(x.zeros_like()?)
    }
}

/// An ε-model's `x_0 = (x − b·ε)/a` has no value where `a(T) = 0`: DDIM, DPM-Solver++(2M)
/// and ancestral sampling from `grid`'s pure-noise start each refuse it in one line
/// naming the reason, rather than running into non-finite values.
pub fn eps_prediction_is_refused(sde: &dyn GaussianKernel, grid: &TimeGrid) {
    let x_t = start(sde, 8);
    for sampler in [
        Sampler::Ddim { eta: 0.0 },
        Sampler::DpmPp2m,
        Sampler::Ancestral,
    ] {
        let mut noise = Noise::new(1, 0, 8, &[2], &Device::Cpu);
        let err = sampler
            .sample(&sde, &ZeroEps, &x_t, grid, &mut noise)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pure noise") && err.contains("predicting eps"),
            "{sampler}: {err}"
        );
        assert_eq!(err.lines().count(), 1);
    }
}
