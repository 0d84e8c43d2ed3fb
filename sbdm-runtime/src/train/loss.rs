//! Denoising score matching for any linear SDE: targets per parameterisation and the
//! weightings of the literature, all expressed through one score-space weight.
//!
//! With `x_t = a·x_0 + b·ε`, the conditional score is `−ε/b`; the loss at time `t` is
//! `w(t)·‖s_θ(x_t, t) + ε/b‖²` (Vincent 2011; Song et al. 2021). Every parameterisation's
//! error is a multiple of the score error, `‖Δs‖² = k²·‖Δout‖²`:
//! `k = 1` (score), `1/b` (eps), `a/b²` (x0), `a/((a² + b²)·b)` (v), so a weighting is
//! one function `w(t)` and the loss in the model's own output space carries `w·k²`.

use candle_core::{Tensor, D};

use crate::error::{invalid, Result};
use crate::model::prediction::{KernelAt, Prediction};
use crate::model::{Condition, ScoreModel};
use crate::sde::GaussianKernel;

/// How the DSM loss weights time.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Weighting {
    /// `w = b(t)²` (score_sde's default): the plain eps-MSE.
    B2,
    /// `w = g(t)²`, the likelihood weighting of Song et al. (2021): the loss bounds the
    /// negative log-likelihood.
    Likelihood,
    /// Unit weight on the model output's own MSE (DDPM's "simple" loss for eps models,
    /// plain regression for x0 / v; with preconditioning, on the network's raw output —
    /// EDM's weighting).
    Uniform,
    /// Min-SNR-γ (Hang et al. 2023): eps-MSE weighted by `min(SNR, γ)/SNR`.
    MinSnr {
        /// The clamp `γ` (5 in the paper).
        gamma: f64,
    },
}

impl Weighting {
    /// The CLI names.
    pub const NAMES: [(&'static str, &'static str); 4] = [
        ("b2", "w = b(t)², the eps-MSE (score_sde's default)"),
        ("likelihood", "w = g(t)², the likelihood weighting"),
        (
            "uniform",
            "unit weight on the output's own MSE (EDM with preconditioning)",
        ),
        (
            "min-snr",
            "min(SNR, γ)/SNR on the eps-MSE, γ = 5; min-snr:GAMMA sets γ",
        ),
    ];

    /// Parses a CLI name: `b2`, `likelihood`, `uniform`, `min-snr` or `min-snr:GAMMA`.
    pub fn from_name(name: &str) -> Result<Weighting> {
        let lower = name.to_ascii_lowercase();
        let (head, arg) = match lower.split_once(':') {
            Some((h, a)) => (h.to_string(), Some(a.to_string())),
            None => (lower, None),
        };
        let w = match (head.as_str(), &arg) {
            ("b2" | "score-sde", None) => Weighting::B2,
            ("likelihood", None) => Weighting::Likelihood,
            ("uniform", None) => Weighting::Uniform,
            ("min-snr", None) => Weighting::MinSnr { gamma: 5.0 },
            ("min-snr", Some(g)) => {
                let gamma: f64 = g
                    .parse()
                    .map_err(|_| invalid!("min-snr: γ `{g}` is not a number"))?;
                if !(gamma.is_finite() && gamma > 0.0) {
                    return Err(invalid!("min-snr: γ must be finite and > 0, got {gamma}"));
                }
                Weighting::MinSnr { gamma }
            }
            _ => {
                return Err(invalid!(
                    "unknown weighting `{name}`; valid: {}",
                    Weighting::NAMES
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        };
        Ok(w)
    }

    /// The CLI name.
    pub fn name(&self) -> String {
        match self {
            Weighting::B2 => "b2".into(),
            Weighting::Likelihood => "likelihood".into(),
            Weighting::Uniform => "uniform".into(),
            Weighting::MinSnr { gamma } => format!("min-snr:{gamma}"),
        }
    }

    /// The score-space weight `w(t)` (`None` for [`Weighting::Uniform`], which is
    /// defined in the output's own space).
    pub fn score_weight<S: GaussianKernel + ?Sized>(&self, sde: &S, t: f64) -> Option<f64> {
        let (a, b) = (sde.mean_coef(t), sde.std(t));
        match self {
            Weighting::B2 => Some(b * b),
            Weighting::Likelihood => Some(sde.diffusion_sq(t)),
            Weighting::Uniform => None,
            Weighting::MinSnr { gamma } => {
                let snr = a * a / (b * b);
                Some(b * b * snr.min(*gamma) / snr)
            }
        }
    }
}

/// `k²` with `‖Δscore‖² = k²·‖Δout‖²` for an output of kind `kind` with the kernel at
/// `k` (its rates needed only for [`Prediction::Flow`]).
pub fn score_factor_sq(kind: Prediction, k: KernelAt) -> Result<f64> {
    let (a, b) = (k.a, k.b);
    let b2 = b * b;
    Ok(match kind {
        Prediction::Score => 1.0,
        Prediction::Eps => 1.0 / b2,
        Prediction::X0 => a * a / (b2 * b2),
        Prediction::V => {
            let n = a * a + b2;
            a * a / (n * n * b2)
        }
        // score = −eps/b, eps = (a·u − ȧ·x)/(a·ḃ − ȧ·b).
        Prediction::Flow => {
            let det = a * k.db - k.da * b;
            a * a / (b2 * det * det)
        }
        Prediction::PosteriorMean { .. } => {
            return Err(invalid!("DSM is not defined for a posterior-mean model"))
        }
    })
}

/// Per-row loss weights in the output's own space. `c_out` (the preconditioning's output
/// scale, per row) makes [`Weighting::Uniform`] uniform on the raw network output.
pub fn row_weights<S: GaussianKernel + ?Sized>(
    weighting: Weighting,
    sde: &S,
    kind: Prediction,
    t: &[f64],
    c_out: Option<&[f64]>,
) -> Result<Vec<f64>> {
    t.iter()
        .enumerate()
        .map(|(i, &ti)| {
            let k = KernelAt::for_conversion(sde, ti, kind, Prediction::Score);
            Ok(match weighting.score_weight(sde, ti) {
                Some(w) => w * score_factor_sq(kind, k)?,
                None => match c_out {
                    Some(c) => 1.0 / (c[i] * c[i]),
                    None => 1.0,
                },
            })
        })
        .collect()
}

/// The regression target of an output of kind `kind`, given the batch's `x_0`, `ε`
/// (f32 tensors `[N, …]`), per-row `a`, `b` and, for [`Prediction::Flow`], the per-row
/// rates `(ȧ, ḃ)` (see [`flow_rates`]).
pub fn target(
    kind: Prediction,
    x0: &Tensor,
    eps: &Tensor,
    a: &[f64],
    b: &[f64],
    rates: &[(f64, f64)],
) -> Result<Tensor> {
    let rows = |v: Vec<f64>| crate::model::net::row_tensor(&v, x0);
    Ok(match kind {
        Prediction::Eps => eps.clone(),
        Prediction::X0 => x0.clone(),
        Prediction::Score => eps.broadcast_mul(&rows(b.iter().map(|b| -1.0 / b).collect())?)?,
        Prediction::V => {
            (eps.broadcast_mul(&rows(a.to_vec())?)? - x0.broadcast_mul(&rows(b.to_vec())?)?)?
        }
        // u = ȧ·x_0 + ḃ·ε.
        Prediction::Flow => {
            if rates.len() != a.len() {
                return Err(invalid!(
                    "the flow target needs the kernel's rates of every row ({} for {} rows)",
                    rates.len(),
                    a.len()
                ));
            }
            let da = rows(rates.iter().map(|r| r.0).collect())?;
            let db = rows(rates.iter().map(|r| r.1).collect())?;
            (x0.broadcast_mul(&da)? + eps.broadcast_mul(&db)?)?
        }
        Prediction::PosteriorMean { .. } => {
            return Err(invalid!("DSM is not defined for a posterior-mean model"))
        }
    })
}

/// The per-row rates `(ȧ, ḃ)` at times `t` that a [`Prediction::Flow`] target needs
/// (empty for other kinds, which do not).
pub fn flow_rates<S: GaussianKernel + ?Sized>(
    sde: &S,
    kind: Prediction,
    t: &[f64],
) -> Vec<(f64, f64)> {
    if kind != Prediction::Flow {
        return Vec::new();
    }
    t.iter()
        .map(|&t| (sde.mean_coef_dt(t), sde.std_dt(t)))
        .collect()
}

/// `mean_i w_i · mean_j (out_ij − target_ij)²`: the weighted MSE (a scalar tensor).
pub fn weighted_mse(out: &Tensor, target: &Tensor, w: &[f64]) -> Result<Tensor> {
    let n = out.dim(0)?;
    let diff = (out - target)?.sqr()?.flatten_from(1)?.mean(D::Minus1)?;
    let w: Vec<f64> = w.iter().map(|&v| v / n as f64).collect();
    let w = crate::model::net::row_tensor(&w, &diff)?;
    Ok((diff * w)?.sum_all()?)
}

/// `x_t = a·x_0 + b·ε` per row.
pub fn perturb(x0: &Tensor, eps: &Tensor, a: &[f64], b: &[f64]) -> Result<Tensor> {
    let r = |v: &[f64]| crate::model::net::row_tensor(v, x0);
    Ok((x0.broadcast_mul(&r(a)?)? + eps.broadcast_mul(&r(b)?)?)?)
}

/// The DSM loss of any score model (an exact oracle included) on a batch: `x_0`, `ε`
/// f32 `[N, …]`, times `t` (one per row), in the model's own output space.
pub fn dsm_loss<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    sde: &S,
    model: &M,
    x0: &Tensor,
    eps: &Tensor,
    t: &[f64],
    weighting: Weighting,
) -> Result<Tensor> {
    let a: Vec<f64> = t.iter().map(|&t| sde.mean_coef(t)).collect();
    let b: Vec<f64> = t.iter().map(|&t| sde.std(t)).collect();
    let xt = perturb(x0, eps, &a, &b)?;
    let tt = Tensor::from_vec(t.to_vec(), t.len(), x0.device())?;
    let out = model
        .forward(&xt, &tt, &Condition::None)?
        .to_dtype(x0.dtype())?;
    let kind = model.prediction();
    let w = row_weights(weighting, sde, kind, t, None)?;
    let rates = flow_rates(sde, kind, t);
    weighted_mse(&out, &target(kind, x0, eps, &a, &b, &rates)?, &w)
}
