//! What a network predicts, and the conversions between predictions through the
//! kernel `x_t = a·x_0 + b·eps`. One function per formula.
//!
//! With `v = a·eps − b·x_0` (Salimans & Ho; for VP `a² + b² = 1`):
//! `x_0 = (a·x − b·v)/(a² + b²)`, `eps = (b·x + a·v)/(a² + b²)`.

use candle_core::Tensor;

use crate::error::Result;

/// What a model's output means.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Prediction {
    /// `∇ log p_t(x)`.
    Score,
    /// The noise `eps`.
    #[default]
    Eps,
    /// The clean data `x_0`.
    X0,
    /// `v = a·eps − b·x_0`.
    V,
    /// A discrete-time model's posterior mean `E[x_{t−1/N} | x_t]` (`N` training steps):
    /// `μ = c_x·x + c_0·x_0` with the posterior coefficients of the step `t → t − 1/N`.
    /// Converting it needs the SDE at the earlier time, so only [`crate::sampling::Denoiser`]
    /// converts it.
    PosteriorMean {
        /// `N`, the number of training timesteps.
        num_train: u32,
    },
}

impl Prediction {
    /// Every prediction with its CLI name.
    pub const ALL: [(Prediction, &'static str); 4] = [
        (Prediction::Score, "score"),
        (Prediction::Eps, "eps"),
        (Prediction::X0, "x0"),
        (Prediction::V, "v"),
    ];

    /// Looks a prediction up by name.
    pub fn from_name(name: &str) -> Option<Prediction> {
        Prediction::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(p, _)| *p)
    }

    /// The CLI name.
    pub fn name(self) -> &'static str {
        if let Prediction::PosteriorMean { .. } = self {
            return "posterior-mean";
        }
        Prediction::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map(|(_, n)| *n)
            .unwrap_or("eps")
    }
}

/// `eps = −b·score`.
pub fn eps_from_score(score: &Tensor, b: f64) -> Result<Tensor> {
    Ok(score.affine(-b, 0.0)?)
}

/// `score = −eps / b`.
pub fn score_from_eps(eps: &Tensor, b: f64) -> Result<Tensor> {
    Ok(eps.affine(-1.0 / b, 0.0)?)
}

/// `x_0 = (x − b·eps) / a`.
pub fn x0_from_eps(x: &Tensor, eps: &Tensor, a: f64, b: f64) -> Result<Tensor> {
    Ok((x - eps.affine(b, 0.0)?)?.affine(1.0 / a, 0.0)?)
}

/// `eps = (x − a·x_0) / b`.
pub fn eps_from_x0(x: &Tensor, x0: &Tensor, a: f64, b: f64) -> Result<Tensor> {
    Ok((x - x0.affine(a, 0.0)?)?.affine(1.0 / b, 0.0)?)
}

/// `x_0 = (a·x − b·v) / (a² + b²)`.
pub fn x0_from_v(x: &Tensor, v: &Tensor, a: f64, b: f64) -> Result<Tensor> {
    let n = a * a + b * b;
    Ok((x.affine(a / n, 0.0)? - v.affine(b / n, 0.0)?)?)
}

/// `eps = (b·x + a·v) / (a² + b²)`.
pub fn eps_from_v(x: &Tensor, v: &Tensor, a: f64, b: f64) -> Result<Tensor> {
    let n = a * a + b * b;
    Ok((x.affine(b / n, 0.0)? + v.affine(a / n, 0.0)?)?)
}

/// `v = a·eps − b·x_0`.
pub fn v_from(eps: &Tensor, x0: &Tensor, a: f64, b: f64) -> Result<Tensor> {
    Ok((eps.affine(a, 0.0)? - x0.affine(b, 0.0)?)?)
}

/// Converts a model output `out` of kind `from` at state `x` into `to`.
pub fn convert(
    out: &Tensor,
    from: Prediction,
    to: Prediction,
    x: &Tensor,
    a: f64,
    b: f64,
) -> Result<Tensor> {
    if from == to {
        return Ok(out.clone());
    }
    let eps = match from {
        Prediction::Eps => out.clone(),
        Prediction::Score => eps_from_score(out, b)?,
        Prediction::X0 => eps_from_x0(x, out, a, b)?,
        Prediction::V => eps_from_v(x, out, a, b)?,
        Prediction::PosteriorMean { .. } => return Err(mean_needs_sde()),
    };
    match to {
        Prediction::Eps => Ok(eps),
        Prediction::PosteriorMean { .. } => Err(mean_needs_sde()),
        Prediction::Score => score_from_eps(&eps, b),
        Prediction::X0 => match from {
            Prediction::V => x0_from_v(x, out, a, b),
            _ => x0_from_eps(x, &eps, a, b),
        },
        Prediction::V => {
            let x0 = match from {
                Prediction::X0 => out.clone(),
                _ => x0_from_eps(x, &eps, a, b)?,
            };
            v_from(&eps, &x0, a, b)
        }
    }
}

/// The conversion from `from` to `to` as two coefficients `(c_x, c_out)` with
/// `to = c_x·x + c_out·out`. Every conversion above is linear in `(x, out)`, so a
/// sampler can fold these coefficients into its fused step instead of materialising
/// the converted tensor.
///
/// Through `eps = e_x·x + e_out·out` (`Score`: `eps = −b·score`; `X0`:
/// `eps = (x − a·x_0)/b`; `V`: `eps = (b·x + a·v)/(a² + b²)`), then `x_0 = (x − b·eps)/a`,
/// `score = −eps/b`, `v = a·eps − b·x_0`.
pub fn linear_coefficients(from: Prediction, to: Prediction, a: f64, b: f64) -> (f64, f64) {
    if from == to {
        return (0.0, 1.0);
    }
    let (ex, eo) = match from {
        Prediction::Eps => (0.0, 1.0),
        Prediction::Score => (0.0, -b),
        Prediction::X0 => (1.0 / b, -a / b),
        Prediction::V => {
            let n = a * a + b * b;
            (b / n, a / n)
        }
        // Needs the SDE at the previous step: Denoiser handles it; NaN here is caught by
        // the fused step's finiteness check rather than silently used.
        Prediction::PosteriorMean { .. } => return (f64::NAN, f64::NAN),
    };
    // x_0 = (x − b·eps)/a.
    let x0 = ((1.0 - b * ex) / a, -b * eo / a);
    match to {
        Prediction::Eps => (ex, eo),
        Prediction::Score => (-ex / b, -eo / b),
        Prediction::X0 => x0,
        Prediction::V => (a * ex - b * x0.0, a * eo - b * x0.1),
        Prediction::PosteriorMean { .. } => (f64::NAN, f64::NAN),
    }
}

/// Converting a posterior mean needs the SDE at the previous step.
fn mean_needs_sde() -> crate::error::Error {
    crate::error::invalid!(
        "a posterior-mean prediction is converted through the SDE at the previous step: use Denoiser"
    )
}
