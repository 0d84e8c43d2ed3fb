//! The DSM loss has its minimiser at the exact score.
//!
//! Data `N(μ, s0²·I)` diffused by VP: `x_t ~ N(a·μ, V·I)`, `V = a²s0² + b²`, and the
//! exact score is the one-component mixture oracle's. Plugged in as the model (converted
//! to each parameterisation), the loss is the conditional variance of that
//! parameterisation's target given `x_t`, derived here from Gaussian conditioning alone
//! (not from the loss code's conversion factors):
//! `Var(ε|x_t) = 1 − b²/V`, `Var(x_0|x_t) = b²s0²/V`, `Var(−ε/b|x_t) = (1 − b²/V)/b²`,
//! `Var(v|x_t) = ((a² + b²)/a)²·Var(ε|x_t)`. The b² weighting turns every
//! parameterisation into the ε-MSE, so its value is `Var(ε|x_t)` for all four.

use candle_core::{DType, Device, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::model::prediction::{self, Prediction};
use sbdm_runtime::model::ScoreModel;
use sbdm_runtime::sde::builtin::VpSde;
use sbdm_runtime::train::loss::{dsm_loss, Weighting};
use sbdm_runtime::{GaussianKernel, Sde};

const N: usize = 20_000;
const D: usize = 2;
const MU: [f64; 2] = [1.0, -0.5];
const S0: f64 = 0.8;

/// The exact score converted to `to`, optionally scaled by `1 + delta` in score space.
struct Exact<'a> {
    sde: &'a VpSde,
    mix: &'a GaussianMixture,
    to: Prediction,
    delta: f64,
}

impl ScoreModel for Exact<'_> {
    fn prediction(&self) -> Prediction {
        self.to
    }
    fn forward(
        &self,
        x: &Tensor,
        t: &Tensor,
        _c: &sbdm_runtime::model::Condition,
    ) -> sbdm_runtime::error::Result<Tensor> {
        let ts = t.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        let t0 = ts[0];
        assert!(
            ts.iter().all(|&v| v == t0),
            "one time per batch in this test"
        );
        let xf = x.to_dtype(DType::F64)?;
        let s = self
            .mix
            .score(self.sde, &xf, t0)?
            .affine(1.0 + self.delta, 0.0)?;
        let k = prediction::KernelAt::with_rates(self.sde, t0);
        Ok(prediction::convert(&s, Prediction::Score, self.to, &xf, k)?.to_dtype(x.dtype())?)
    }
}

fn batch(seed: u64) -> (Tensor, Tensor) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x0 = Vec::with_capacity(N * D);
    let mut eps = Vec::with_capacity(N * D);
    for _ in 0..N {
        for mu in MU {
            let z: f64 = StandardNormal.sample(&mut rng);
            x0.push(mu + S0 * z);
        }
    }
    for _ in 0..N * D {
        let z: f64 = StandardNormal.sample(&mut rng);
        eps.push(z);
    }
    let dev = Device::Cpu;
    (
        Tensor::from_vec(x0, (N, D), &dev).unwrap(),
        Tensor::from_vec(eps, (N, D), &dev).unwrap(),
    )
}

/// The irreducible loss of `kind` under `weighting` at `t`, from Gaussian conditioning.
fn irreducible(sde: &VpSde, kind: Prediction, weighting: Weighting, t: f64) -> f64 {
    let (a, b) = (sde.mean_coef(t), sde.std(t));
    let v = a * a * S0 * S0 + b * b;
    let var_eps = 1.0 - b * b / v;
    let own = match kind {
        Prediction::Eps => var_eps,
        Prediction::X0 => b * b * S0 * S0 / v,
        Prediction::Score => var_eps / (b * b),
        Prediction::V => ((a * a + b * b) / a).powi(2) * var_eps,
        // u − E[u | x_t] = −(D/b)·(x_0 − E[x_0 | x_t]), D = a·ḃ − ȧ·b.
        Prediction::Flow => {
            let det = a * sde.std_dt(t) - sde.mean_coef_dt(t) * b;
            det * det * S0 * S0 / v
        }
        Prediction::PosteriorMean { .. } => unreachable!(),
    };
    let snr = a * a / (b * b);
    match weighting {
        Weighting::Uniform => own,
        Weighting::B2 => var_eps,
        Weighting::MinSnr { gamma } => var_eps * snr.min(gamma) / snr,
        Weighting::Likelihood => sde.diffusion_sq(t) * var_eps / (b * b),
    }
}

#[test]
fn dsm_minimiser_is_the_exact_score_for_every_parameterisation_and_weighting() {
    let sde = VpSde::default();
    let mix = GaussianMixture::new(vec![1.0], vec![MU.to_vec()], vec![S0]).unwrap();
    let (x0, eps) = batch(3);
    // Relative Monte-Carlo s.e. of a mean of N·D squared Gaussians: sqrt(2/(N·D)) = 0.7 %.
    let rel_se = (2.0 / (N * D) as f64).sqrt();
    let weightings = [
        Weighting::B2,
        Weighting::Likelihood,
        Weighting::Uniform,
        Weighting::MinSnr { gamma: 5.0 },
    ];
    for t in [0.05, 0.3, 0.7] {
        let ts = vec![t; N];
        for (kind, name) in Prediction::ALL {
            for w in weightings {
                let exact = Exact {
                    sde: &sde,
                    mix: &mix,
                    to: kind,
                    delta: 0.0,
                };
                let got = dsm_loss(&sde, &exact, &x0, &eps, &ts, w)
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap();
                let want = irreducible(&sde, kind, w, t);
                let rel = (got - want).abs() / want;
                assert!(
                    rel < 5.0 * rel_se,
                    "{name}, {}, t = {t}: loss {got} vs irreducible {want} (rel {rel:.4})",
                    w.name()
                );
                // The score scaled by 1 + δ: with the same batch, the loss rises by
                // w·δ²·E|s*|²/D = w·δ²/V (Δ = s_cond − s* is independent of x_t here),
                // up to the cross term 2δ·w·mean(Δ·s*), whose s.e. is
                // 2δ·w·sqrt(v/(V·N·D)) with v = 1/b² − 1/V.
                let delta = 0.5;
                let perturbed = Exact { delta, ..exact };
                let worse = dsm_loss(&sde, &perturbed, &x0, &eps, &ts, w)
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap();
                let (a, b) = (sde.mean_coef(t), sde.std(t));
                let big_v = a * a * S0 * S0 + b * b;
                let v = 1.0 / (b * b) - 1.0 / big_v;
                let w_score = want / v;
                let rise = w_score * delta * delta / big_v;
                let se = 2.0 * delta * w_score * (v / (big_v * (N * D) as f64)).sqrt();
                assert!(
                    worse > got && (worse - got - rise).abs() < 5.0 * se,
                    "{name}, {}, t = {t}: perturbed loss {worse} vs {got}: rise {} expected {rise} ± {se}",
                    w.name(),
                    worse - got
                );
            }
        }
    }
}

#[test]
fn weighting_names_round_trip_and_bad_names_list_the_valid_ones() {
    for (name, _) in Weighting::NAMES {
        let w = Weighting::from_name(name).unwrap();
        assert_eq!(Weighting::from_name(&w.name()).unwrap(), w);
    }
    assert_eq!(
        Weighting::from_name("min-snr:2.5").unwrap(),
        Weighting::MinSnr { gamma: 2.5 }
    );
    let e = Weighting::from_name("snr").unwrap_err().to_string();
    assert!(e.contains("b2, likelihood, uniform, min-snr"), "{e}");
    let e = Weighting::from_name("min-snr:-1").unwrap_err().to_string();
    assert!(e.contains("γ"), "{e}");
}
