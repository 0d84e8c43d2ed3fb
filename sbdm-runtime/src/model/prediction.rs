//! What a network predicts, and the conversions between predictions through the
//! kernel `x_t = a·x_0 + b·eps`. One function per formula.
//!
//! With `v = a·eps − b·x_0` (Salimans & Ho; for VP `a² + b² = 1`):
//! `x_0 = (a·x − b·v)/(a² + b²)`, `eps = (b·x + a·v)/(a² + b²)`.
//!
//! The flow-matching velocity `u = ȧ·x_0 + ḃ·eps` (Lipman et al. 2022; Liu et al. 2022:
//! for rectified flow, `a = 1 − t`, `b = t`, `u = eps − x_0`) is the probability-flow
//! ODE's drift itself, `dx/dt = E[u | x_t]`, on any linear SDE. With `D = a·ḃ − ȧ·b`
//! (`= a·g²/(2b) > 0`, and `−ȧ·b ≠ 0` where `a = 0`):
//! `x_0 = (ḃ·x − b·u)/D`, `eps = (a·u − ȧ·x)/D`.

use candle_core::Tensor;

use crate::error::Result;
use crate::sde::GaussianKernel;

/// The kernel `x_t = a·x_0 + b·eps` at one time, and its rates `ȧ = da/dt`, `ḃ = db/dt`
/// (needed only by the flow velocity: `NaN` unless asked for).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KernelAt {
    /// `a(t)`.
    pub a: f64,
    /// `b(t)`.
    pub b: f64,
    /// `ȧ(t)`.
    pub da: f64,
    /// `ḃ(t)`.
    pub db: f64,
}

impl KernelAt {
    /// `a`, `b` of `sde` at `t`, without the rates.
    pub fn of<S: GaussianKernel + ?Sized>(sde: &S, t: f64) -> KernelAt {
        KernelAt {
            a: sde.mean_coef(t),
            b: sde.std(t),
            da: f64::NAN,
            db: f64::NAN,
        }
    }

    /// `a`, `b` and the rates `ȧ`, `ḃ` of `sde` at `t`.
    pub fn with_rates<S: GaussianKernel + ?Sized>(sde: &S, t: f64) -> KernelAt {
        KernelAt {
            da: sde.mean_coef_dt(t),
            db: sde.std_dt(t),
            ..KernelAt::of(sde, t)
        }
    }

    /// What a conversion from `from` to `to` at `t` needs: the rates only when either is
    /// the flow velocity.
    pub fn for_conversion<S: GaussianKernel + ?Sized>(
        sde: &S,
        t: f64,
        from: Prediction,
        to: Prediction,
    ) -> KernelAt {
        if from == Prediction::Flow || to == Prediction::Flow {
            KernelAt::with_rates(sde, t)
        } else {
            KernelAt::of(sde, t)
        }
    }

    /// `D = a·ḃ − ȧ·b`: the determinant taking `(x_0, eps)` to `(x, u)`.
    fn flow_det(&self) -> f64 {
        self.a * self.db - self.da * self.b
    }
}

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
    /// The flow-matching velocity `u = ȧ·x_0 + ḃ·eps` (rectified flow: `eps − x_0`).
    Flow,
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
    pub const ALL: [(Prediction, &'static str); 5] = [
        (Prediction::Score, "score"),
        (Prediction::Eps, "eps"),
        (Prediction::X0, "x0"),
        (Prediction::V, "v"),
        (Prediction::Flow, "flow"),
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

/// Converts a model output `out` of kind `from` at state `x` into `to`, the kernel at
/// `k` (with its rates when either is [`Prediction::Flow`]).
pub fn convert(
    out: &Tensor,
    from: Prediction,
    to: Prediction,
    x: &Tensor,
    k: KernelAt,
) -> Result<Tensor> {
    if from == to {
        return Ok(out.clone());
    }
    let (a, b) = (k.a, k.b);
    if from == Prediction::Flow || to == Prediction::Flow {
        // Through the linear form: no per-kind path to keep bit-identical.
        let (c_x, c_out) = linear_coefficients(from, to, k);
        return Ok((x.affine(c_x, 0.0)? + out.affine(c_out, 0.0)?)?);
    }
    let eps = match from {
        Prediction::Eps => out.clone(),
        Prediction::Score => eps_from_score(out, b)?,
        Prediction::X0 => eps_from_x0(x, out, a, b)?,
        Prediction::V => eps_from_v(x, out, a, b)?,
        Prediction::Flow => unreachable!("handled above"),
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
        Prediction::Flow => unreachable!("handled above"),
    }
}

/// The conversion from `from` to `to` as two coefficients `(c_x, c_out)` with
/// `to = c_x·x + c_out·out`, the kernel at `k`. Every conversion above is linear in
/// `(x, out)`, so a sampler can fold these coefficients into its fused step instead of
/// materialising the converted tensor.
///
/// Through `eps = e_x·x + e_out·out` (`Score`: `eps = −b·score`; `X0`:
/// `eps = (x − a·x_0)/b`; `V`: `eps = (b·x + a·v)/(a² + b²)`), then `x_0 = (x − b·eps)/a`,
/// `score = −eps/b`, `v = a·eps − b·x_0`. `x_0`, `v` and the flow velocity give both
/// `eps` and `x_0` directly (finite where `a = 0`), and `u = ȧ·x_0 + ḃ·eps`.
pub fn linear_coefficients(from: Prediction, to: Prediction, k: KernelAt) -> (f64, f64) {
    if from == to {
        return (0.0, 1.0);
    }
    let (a, b) = (k.a, k.b);
    let (ex, eo) = match from {
        Prediction::Eps => (0.0, 1.0),
        Prediction::Score => (0.0, -b),
        Prediction::X0 => (1.0 / b, -a / b),
        Prediction::V => {
            let n = a * a + b * b;
            (b / n, a / n)
        }
        Prediction::Flow => {
            let det = k.flow_det();
            (-k.da / det, a / det)
        }
        // Needs the SDE at the previous step: Denoiser handles it; NaN here is caught by
        // the fused step's finiteness check rather than silently used.
        Prediction::PosteriorMean { .. } => return (f64::NAN, f64::NAN),
    };
    let x0 = match from {
        Prediction::X0 => (0.0, 1.0),
        // x_0 = (a·x − b·v)/(a² + b²), as `x0_from_v`.
        Prediction::V => {
            let n = a * a + b * b;
            (a / n, -b / n)
        }
        Prediction::Flow => {
            let det = k.flow_det();
            (k.db / det, -b / det)
        }
        // x_0 = (x − b·eps)/a.
        _ => ((1.0 - b * ex) / a, -b * eo / a),
    };
    match to {
        Prediction::Eps => (ex, eo),
        Prediction::Score => (-ex / b, -eo / b),
        Prediction::X0 => x0,
        Prediction::V => (a * ex - b * x0.0, a * eo - b * x0.1),
        Prediction::Flow => (k.da * x0.0 + k.db * ex, k.da * x0.1 + k.db * eo),
        Prediction::PosteriorMean { .. } => (f64::NAN, f64::NAN),
    }
}

/// Converting a posterior mean needs the SDE at the previous step.
fn mean_needs_sde() -> crate::error::Error {
    crate::error::invalid!(
        "a posterior-mean prediction is converted through the SDE at the previous step: use Denoiser"
    )
}
