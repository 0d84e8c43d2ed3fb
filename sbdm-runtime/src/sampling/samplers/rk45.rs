//! Probability-flow ODE, adaptive Dormand–Prince 5(4) (order 5, embedded order 4).
//!
//! Dormand & Prince (1980), "A family of embedded Runge–Kutta formulae"; step-size
//! control as in Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4 (DOPRI5) with the PI
//! controller of Gustafsson (1991). Integrates `dx/dt = F(t)·x − ½·g(t)²·score(x, t)` from
//! `t_max` down to `t_min`:
//!
//! ```text
//! k_i  = f(x + h·Σ_j a_ij·k_j, t + c_i·h),  i = 1..7     (k_1 = k_7 of the last step: FSAL)
//! x'   = x + h·Σ_i b_i·k_i                               (5th order; = the 7th stage's input)
//! err  = h·Σ_i e_i·k_i,  e = b − b̂                       (b̂: the embedded 4th-order weights)
//! ‖err‖ = RMS(err / (atol + rtol·max(|x|, |x'|)))
//! accept if ‖err‖ ≤ 1;  h ← h·clamp(0.9·‖err‖^(−α)·‖err_prev‖^β, 0.2, 10),  α = 0.17, β = 0.04
//! ```
//!
//! The first step is `(t_max − t_min)/cfg.steps`; after a rejection the step does not
//! grow. The model evaluations (6 per attempted step, 1 more at the start) are counted by
//! the [`Denoiser`].
//!
//! Memory: seven stage buffers `k_i`, a stage-input buffer, an error buffer and one
//! candidate state are allocated once per run and reused (accepted steps swap the state
//! with the candidate, so there is no copy). Each stage is a linear combination of up to
//! six tensors, so it takes several of the fused two-source passes: per attempted step 6
//! passes form the `k_i` from stage inputs and scores, 14 form the stage inputs (the last
//! is `x'`) and 3 the error, 23 in all, plus a few unfused ops for the error norm. This
//! is the reference solver; the fixed-step samplers are the fast ones.

use candle_core::{DType, Tensor};

use crate::error::{invalid, Result};
use crate::model::prediction::Prediction;
use crate::model::{Denoiser, ScoreModel};
use crate::sampling::fused;
use crate::sampling::{at_step, SamplerConfig};
use crate::sde::GaussianKernel;

use sbdm_symbolic::numeric::dopri5::{A, C, E};

const SAFETY: f64 = 0.9;
const ALPHA: f64 = 0.2 - 0.75 * BETA;
const BETA: f64 = 0.04;
const FAC_MIN: f64 = 0.2;
const FAC_MAX: f64 = 10.0;
const MAX_STEPS: usize = 100_000;

/// `dst ← base + Σ c_j·k_j` over the nonzero `c_j`, in `1 + ⌈(n − 1)/2⌉` fused passes.
/// `dst` must hold finite values (its old value is multiplied by 0).
fn lincomb(dst: &Tensor, base: Option<&Tensor>, terms: &[(f64, &Tensor)]) -> Result<()> {
    let mut terms = terms.iter().filter(|(c, _)| *c != 0.0);
    let mut next = || terms.next().copied();
    match (base, next()) {
        (Some(b), Some((c, k))) => fused::axpbypcz(dst, 0.0, b, 1.0, k, c)?,
        (None, Some((c1, k1))) => match next() {
            Some((c2, k2)) => fused::axpbypcz(dst, 0.0, k1, c1, k2, c2)?,
            None => fused::axpby(dst, 0.0, k1, c1)?,
        },
        (Some(b), None) => fused::axpby(dst, 0.0, b, 1.0)?,
        (None, None) => return Err(invalid!("rk45: empty linear combination")),
    }
    while let Some((c1, k1)) = next() {
        match next() {
            Some((c2, k2)) => fused::axpbypcz(dst, 1.0, k1, c1, k2, c2)?,
            None => fused::axpby(dst, 1.0, k1, c1)?,
        }
    }
    Ok(())
}

/// Integrates `x` in place from `t_max` down to `t_min`.
pub(crate) fn run<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    den: &Denoiser<'_, S, M>,
    x: &Tensor,
    t_max: f64,
    t_min: f64,
    cfg: &SamplerConfig,
) -> Result<()> {
    let (rtol, atol) = (cfg.rtol, cfg.atol);
    if !(rtol >= 0.0 && atol >= 0.0 && rtol + atol > 0.0 && (rtol + atol).is_finite()) {
        return Err(invalid!(
            "rk45: rtol and atol must be >= 0 and not both 0, got rtol = {rtol}, atol = {atol}"
        ));
    }
    let sde = den.sde();
    // f(y, t) = F_t·y − ½g_t²·score(y, t), written into the buffer `k`
    // (score = s_x·y + s_o·out: the model's raw output, its conversion folded in).
    let f = |k: &Tensor, y: &Tensor, t: f64| -> Result<()> {
        let score = den.predict_linear(y, t, Prediction::Score)?;
        let c = -0.5 * sde.diffusion_sq(t);
        let c_y = sde.drift_coef(t) + c * score.c_x;
        fused::axpbypcz(k, 0.0, y, c_y, &score.out, c * score.c_out)
    };
    let buf = || x.zeros_like();
    let mut k: Vec<Tensor> = (0..7).map(|_| buf()).collect::<candle_core::Result<_>>()?;
    let (y, err) = (buf()?, buf()?);
    // The state and the candidate; `cur` starts as `x` itself (shared storage).
    let (mut cur, mut cand) = (x.clone(), buf()?);
    let mut cur_is_x = true;

    let span = t_max - t_min;
    let mut t = t_max;
    let mut h = -span / cfg.steps.max(1) as f64;
    let mut err_prev: f64 = 1e-4;
    let mut rejected = false;
    let mut step = 0;
    f(&k[0], &cur, t).map_err(at_step(0, t))?;
    while t > t_min {
        if step >= MAX_STEPS {
            return Err(invalid!(
                "rk45: more than {MAX_STEPS} steps (t = {t}); loosen rtol/atol"
            ));
        }
        let last = t + h <= t_min + 1e-12 * span;
        if last {
            h = t_min - t;
        }
        let t_next = if last { t_min } else { t + h };
        // Stages 2..7; the 7th stage's input is the 5th-order candidate x'.
        for i in 1..7 {
            let terms: Vec<(f64, &Tensor)> = A[i].iter().map(|a| h * a).zip(&k).collect();
            let dst = if i == 6 { &cand } else { &y };
            lincomb(dst, Some(&cur), &terms).map_err(at_step(step, t))?;
            let ti = if C[i] == 1.0 { t_next } else { t + C[i] * h };
            f(&k[i], dst, ti).map_err(at_step(step, t))?;
        }
        let terms: Vec<(f64, &Tensor)> = E.iter().map(|e| h * e).zip(&k).collect();
        lincomb(&err, None, &terms).map_err(at_step(step, t))?;
        let scale = cur.abs()?.maximum(&cand.abs()?)?.affine(rtol, atol)?;
        let norm = (&err / scale)?
            .sqr()?
            .mean_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?
            .sqrt();

        if norm <= 1.0 {
            t = t_next;
            std::mem::swap(&mut cur, &mut cand);
            cur_is_x = !cur_is_x;
            k.swap(0, 6); // FSAL: k_7 = f(x', t + h) is the next step's k_1.
            let mut fac = SAFETY * norm.powf(-ALPHA) * err_prev.powf(BETA);
            fac = fac.clamp(FAC_MIN, if rejected { 1.0 } else { FAC_MAX });
            h *= fac;
            err_prev = norm.max(1e-4);
            rejected = false;
            step += 1;
        } else {
            // Includes a NaN norm: shrink as much as allowed and retry.
            let fac = if norm.is_finite() {
                (SAFETY * norm.powf(-ALPHA)).max(FAC_MIN)
            } else {
                FAC_MIN
            };
            h *= fac;
            rejected = true;
            if h.abs() < 1e-14 * span.max(t.abs()) {
                return Err(invalid!(
                    "rk45: step size underflow at t = {t} (error norm {norm})"
                ));
            }
        }
    }
    if !cur_is_x {
        fused::axpby(x, 0.0, &cur, 1.0).map_err(at_step(step, t))?;
    }
    Ok(())
}
