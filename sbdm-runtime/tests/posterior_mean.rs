//! A discrete-time model predicting the posterior mean `E[x_{t-1/N} | x_t]` samples
//! exactly like the same model predicting `x_0`: the Denoiser inverts the posterior
//! coefficients of the step `t → t − 1/N`.

use candle_core::{DType, Device, Tensor};
use sbdm_runtime::error::Result;
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::model::prediction::Prediction;
use sbdm_runtime::model::{Condition, ScoreModel};
use sbdm_runtime::sampling::grid::{discrete_times, Spacing};
use sbdm_runtime::sampling::noise::Noise;
use sbdm_runtime::sampling::{Denoiser, Sampler, TimeGrid};
use sbdm_runtime::sde::discrete::{BetaSchedule, DiscreteSchedule};
use sbdm_runtime::sde::GaussianKernel;

/// The exact mixture's x_0 prediction, re-expressed as the DDPM posterior mean
/// μ = c_x·x + c_0·x_0 with the coefficients of the DDPM paper (eq. 7) at knots.
struct MeanModel<'a> {
    mix: &'a GaussianMixture,
    sde: &'a DiscreteSchedule,
}

impl ScoreModel for MeanModel<'_> {
    fn prediction(&self) -> Prediction {
        Prediction::PosteriorMean {
            num_train: self.sde.num_steps() as u32,
        }
    }
    fn forward(&self, x: &Tensor, t: &Tensor, _c: &Condition) -> Result<Tensor> {
        let t0 = t.to_dtype(DType::F64)?.to_vec1::<f64>()?[0];
        let exact = self.mix.model(self.sde);
        let den = Denoiser::new(self.sde, &exact);
        let x0 = den.x0(x, t0)?;
        // Paper notation: ᾱ_t, ᾱ_{t-1}, β_t = 1 − ᾱ_t/ᾱ_{t−1}.
        let n = self.sde.num_steps() as f64;
        let ab_t = self.sde.mean_coef(t0).powi(2);
        let ab_s = self.sde.mean_coef((t0 - 1.0 / n).max(0.0)).powi(2);
        let beta = 1.0 - ab_t / ab_s;
        let c0 = ab_s.sqrt() * beta / (1.0 - ab_t);
        let cx = (1.0 - beta).sqrt() * (1.0 - ab_s) / (1.0 - ab_t);
        Ok((x.affine(cx, 0.0)? + x0.affine(c0, 0.0)?)?)
    }
}

#[test]
fn posterior_mean_model_samples_like_x0_model() {
    let sde = DiscreteSchedule::new(BetaSchedule::linear(), 1000).unwrap();
    let mix = GaussianMixture::ring(4, 2.0, 0.3).unwrap();
    let exact = mix.model(&sde);
    let mean = MeanModel {
        mix: &mix,
        sde: &sde,
    };
    let x_t = mix
        .sample_at(&sde, 1.0, 16, 3, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    // DDIM-style subsampling: 50 of the 1000 training steps.
    let ts = TimeGrid::Times(discrete_times(1000, 50, Spacing::Leading).unwrap());
    for kind in ["ddpm", "ddim"] {
        let kind: Sampler = kind.parse().unwrap();
        let a = kind
            .sample(
                &sde,
                &exact,
                &x_t,
                &ts,
                &mut Noise::new(1, 0, 16, &[2], &Device::Cpu),
            )
            .unwrap();
        let b = kind
            .sample(
                &sde,
                &mean,
                &x_t,
                &ts,
                &mut Noise::new(1, 0, 16, &[2], &Device::Cpu),
            )
            .unwrap();
        let d = (a.x - b.x)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!(d < 1e-6, "{kind:?}: max |difference| {d}");
    }
}

#[test]
fn posterior_mean_needs_the_denoiser() {
    let x = Tensor::zeros((2, 2), DType::F32, &Device::Cpu).unwrap();
    let r = sbdm_runtime::model::prediction::convert(
        &x,
        Prediction::PosteriorMean { num_train: 1000 },
        Prediction::Eps,
        &x,
        sbdm_runtime::model::prediction::KernelAt {
            a: 0.5,
            b: 0.5,
            da: f64::NAN,
            db: f64::NAN,
        },
    );
    assert!(r.unwrap_err().to_string().contains("posterior-mean"));
}
