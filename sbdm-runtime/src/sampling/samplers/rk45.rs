//! Probability-flow ODE, adaptive Dormand–Prince 5(4) (order 5, embedded order 4).
//!
//! Dormand & Prince (1980), "A family of embedded Runge–Kutta formulae"; step-size
//! control as in Hairer, Nørsett & Wanner, *Solving ODEs I*, §II.4 (DOPRI5) with the PI
//! controller of Gustafsson (1991). Integrates `dx/dt = F(t)·x − ½·g(t)²·score(x, t)` from
//! `t_0` to `t_1` in either direction: down from `T` to `t_min` when sampling (`h < 0`), up
//! from `t_min` to `T` when encoding (`h > 0`):
//!
//! ```text
//! k_i  = f(x + h·Σ_j a_ij·k_j, t + c_i·h),  i = 1..7     (k_1 = k_7 of the last step: FSAL)
//! x'   = x + h·Σ_i b_i·k_i                               (5th order; = the 7th stage's input)
//! err  = h·Σ_i e_i·k_i,  e = b − b̂                       (b̂: the embedded 4th-order weights)
//! ‖err‖ = RMS(err / (atol + rtol·max(|x|, |x'|)))
//! accept if ‖err‖ ≤ 1;  h ← h·clamp(0.9·‖err‖^(−α)·‖err_prev‖^β, 0.2, 10),  α = 0.17, β = 0.04
//! ```
//!
//! The first step is `(t_1 − t_0)/steps`; after a rejection the step does not
//! grow. The model evaluations (6 per attempted step, 1 more at the start) are counted by
//! the [`Denoiser`](crate::sampling::Denoiser).
//!
//! Memory: seven stage buffers `k_i`, a stage-input buffer, an error buffer and one
//! candidate state are allocated once per run and reused (accepted steps swap the state
//! with the candidate, so there is no copy). Each stage is a linear combination of up to
//! six tensors, so it takes several of the fused two-source passes: per attempted step 6
//! passes form the `k_i` from stage inputs and scores, 14 form the stage inputs (the last
//! is `x'`) and 3 the error, 23 in all, plus a few unfused ops for the error norm. This
//! is the reference solver; the fixed-step samplers are the fast ones.

use candle_core::DType;

use crate::error::{invalid, Result};
use crate::sampling::guidance::Guide;
use crate::sampling::run::{at_step, Run};
use crate::sampling::step::{Buffer, LinComb};
use crate::sde::GaussianKernel;

use sbdm_symbolic::numeric::dopri5::{A, C, E};

const SAFETY: f64 = 0.9;
const ALPHA: f64 = 0.2 - 0.75 * BETA;
const BETA: f64 = 0.04;
const FAC_MIN: f64 = 0.2;
const FAC_MAX: f64 = 10.0;
const MAX_STEPS: usize = 100_000;

/// `Σ c_j·k_j` over the stages.
fn stages(coefficients: impl Iterator<Item = f64>, k: &[Buffer]) -> LinComb {
    coefficients
        .zip(k)
        .fold(LinComb::default(), |acc, (c, kj)| acc + c * kj)
}

/// Integrates the state from `from` to `to` (down when sampling, up when encoding), the
/// first step `(to − from)/steps`.
pub(crate) fn integrate<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &mut Run<'_, S, G>,
    from: f64,
    to: f64,
    steps: usize,
    rtol: f64,
    atol: f64,
) -> Result<()> {
    // k ← f(y, t) = F_t·y − ½g_t²·score(y, t), the model's conversion folded in.
    let f = |run: &Run<'_, S, G>, k: &Buffer, y: &Buffer, t: f64| -> Result<()> {
        k.assign(run.pf_ode_drift(y, t, 1.0)?)
    };
    let mut k: Vec<Buffer> = (0..7).map(|_| run.buffer()).collect::<Result<_>>()?;
    let (y, err) = (run.buffer()?, run.buffer()?);
    // The state and the candidate; `cur` starts as the state itself (shared storage).
    let (mut cur, mut cand) = (run.x.clone(), run.buffer()?);
    let mut cur_is_x = true;

    let up = to > from;
    let span = (to - from).abs();
    // Whether `t` has not reached `to`, and whether `t + h` lands within `to`'s rounding.
    let before = |t: f64| if up { t < to } else { t > to };
    let lands = |t: f64| {
        if up {
            t >= to - 1e-12 * span
        } else {
            t <= to + 1e-12 * span
        }
    };
    let mut t = from;
    let mut h = (to - from) / steps.max(1) as f64;
    let mut err_prev: f64 = 1e-4;
    let mut rejected = false;
    let mut step = 0;
    f(run, &k[0], &cur, t).map_err(|e| at_step(e, 0, t))?;
    while before(t) {
        if step >= MAX_STEPS {
            return Err(invalid!(
                "rk45: more than {MAX_STEPS} steps (t = {t}); loosen rtol/atol"
            ));
        }
        let last = lands(t + h);
        if last {
            h = to - t;
        }
        let t_next = if last { to } else { t + h };
        let attempt = |run: &Run<'_, S, G>| -> Result<f64> {
            // Stages 2..7; the 7th stage's input is the 5th-order candidate x'.
            for i in 1..7 {
                let dst = if i == 6 { &cand } else { &y };
                dst.assign(1.0 * &cur + stages(A[i].iter().map(|a| h * a), &k))?;
                let ti = if C[i] == 1.0 { t_next } else { t + C[i] * h };
                f(run, &k[i], dst, ti)?;
            }
            err.assign(stages(E.iter().map(|e| h * e), &k))?;
            let scale = cur.abs()?.maximum(&cand.abs()?)?.affine(rtol, atol)?;
            Ok((err.tensor() / scale)?
                .sqr()?
                .mean_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?
                .sqrt())
        };
        let norm = attempt(run).map_err(|e| at_step(e, step, t))?;

        if norm <= 1.0 {
            t = t_next;
            std::mem::swap(&mut cur, &mut cand);
            cur_is_x = !cur_is_x;
            k.swap(0, 6); // FSAL: k_7 = f(x', t + h) is the next step's k_1.
            run.constrain(&cur, t).map_err(|e| at_step(e, step, t))?;
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
        run.x.assign(1.0 * &cur).map_err(|e| at_step(e, step, t))?;
    }
    Ok(())
}
