//! DPM-Solver++(2M) (order 2) and DPM-Solver++(3M) (order 3), multistep, data prediction.
//!
//! Lu et al. (2022b), "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
//! Probabilistic Models", Algorithm 2 (2M), and its third-order multistep extension (the
//! authors' `multistep_dpm_solver_third_update`, `dpmsolver++`; see the note on `D2`).
//! The probability-flow ODE is solved in the half log-SNR `λ = ln(a/b)` with the linear
//! part exact: `x_s = (b_s/b_t)·x + b_s·∫_{λ_t}^{λ_s} e^{λ}·x_0(x_λ, λ) dλ`, the model's
//! `x_0` prediction interpolated through the previous steps' predictions `m_0, m_1, m_2`
//! (newest first) at `λ_t, λ_{t−1}, λ_{t−2}`. With `h = λ_s − λ_t`, `h_0 = λ_t − λ_{t−1}`,
//! `h_1 = λ_{t−1} − λ_{t−2}`, `r_0 = h_0/h`, `r_1 = h_1/h`,
//! `φ_1 = e^{−h} − 1`, `φ_2 = φ_1/h + 1`, `φ_3 = φ_2/h − ½`:
//!
//! ```text
//! 1st order (first step):  x_s = (b_s/b_t)·x − a_s·φ_1·m_0
//! 2M:                      D   = (1 + 1/(2r_0))·m_0 − 1/(2r_0)·m_1
//!                          x_s = (b_s/b_t)·x − a_s·φ_1·D
//! 3M:                      D1_0 = (m_0 − m_1)/r_0,  D1_1 = (m_1 − m_2)/r_1
//!                          D1 = D1_0 + r_0/(r_0 + r_1)·(D1_0 − D1_1)   ≈ h·x_0'
//!                          D2 = 2·(D1_0 − D1_1)/(r_0 + r_1)            ≈ h²·x_0''
//!                          x_s = (b_s/b_t)·x − a_s·φ_1·m_0 + a_s·φ_2·D1 − a_s·φ_3·D2
//! ```
//!
//! (3M's first step is 1st order and its second is 2M.) The last line is the exact
//! integral of the quadratic Taylor expansion `x_0 + u·x_0' + ½u²·x_0''` against
//! `b_s·e^{λ}`, whose `x_0''` term is `−a_s·φ_3·h²·x_0''`; so `D2` must estimate
//! `h²·x_0''`. The reference implementation (and the diffusers and k-diffusion ports) use
//! `D2 = (D1_0 − D1_1)/(r_0 + r_1) ≈ ½h²·x_0''`, which leaves an `O(h³)` local error and
//! a measured global order of 2; with the factor 2 the measured order is 3
//! (`tests/convergence.rs`).
//!
//! One model evaluation per step. The history keeps each step's `x_0`: the model's own
//! output when it predicts `x_0`, otherwise `c_x·x + c_out·out` written in one fused pass
//! into a buffer ([`Denoiser::predict_linear`](crate::sampling::Denoiser::predict_linear); `order` buffers per run, reused). The
//! 1st-order and 2M updates are one fused pass; 3M reads four tensors (`x, m_0, m_1, m_2`)
//! but a fused pass takes at most three, so its update is two passes. Works on any linear
//! SDE (VE: `a = 1`).

use std::collections::VecDeque;

use crate::error::Result;
use crate::model::prediction::Prediction;
use crate::sampling::guidance::Guide;
use crate::sampling::run::Run;
use crate::sampling::step::Buffer;
use crate::sde::GaussianKernel;

/// DPM-Solver++ of multistep order `order` (2 or 3) over the grid `ts` (decreasing;
/// increasing to encode, where `h < 0` and the formulas hold as they are);
/// step `i` uses order `min(i + 1, order)`.
pub(crate) fn sample<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &mut Run<'_, S, G>,
    ts: &[f64],
    order: usize,
) -> Result<()> {
    // (m, h) of earlier steps, newest first: the x_0 prediction at each step's start and
    // the λ-step that followed it.
    let mut hist: VecDeque<(Buffer, f64)> = VecDeque::with_capacity(order);
    // A history buffer no longer needed, reused for the next x_0 (see `x0_at`).
    let mut spare: Option<Buffer> = None;
    run.steps(ts, |run, step| {
        let (sde, t, s) = (run.sde, step.t, step.s);
        let h = sde.log_snr(s) - sde.log_snr(t);
        let (m0, owned) = x0_at(run, t, spare.take())?;
        let (b_t, a_s, b_s) = (sde.std(t), sde.mean_coef(s), sde.std(s));
        let c_x = b_s / b_t;
        let phi_1 = (-h).exp_m1();
        let x_s = match (hist.front(), hist.get(1)) {
            (None, _) => c_x * &run.x + (-a_s * phi_1) * &m0,
            (Some((m1, h0)), None) => {
                let r0 = h0 / h;
                let c = -a_s * phi_1;
                c_x * &run.x + (c * (1.0 + 0.5 / r0)) * &m0 + (-c * 0.5 / r0) * m1
            }
            (Some((m1, h0)), Some((m2, h1))) => {
                let (r0, r1) = (h0 / h, h1 / h);
                let phi_2 = phi_1 / h + 1.0;
                let phi_3 = phi_2 / h - 0.5;
                // x_s = c_x·x − a_s·φ_1·m_0 + c_10·D1_0 + c_11·D1_1, with D1 and D2
                // expanded in D1_0 and D1_1, then D1_0 and D1_1 in m_0, m_1, m_2.
                let c_10 = a_s * (phi_2 * (1.0 + r0 / (r0 + r1)) - 2.0 * phi_3 / (r0 + r1));
                let c_11 = a_s * (2.0 * phi_3 - phi_2 * r0) / (r0 + r1);
                let k0 = -a_s * phi_1 + c_10 / r0;
                let k1 = -c_10 / r0 + c_11 / r1;
                let k2 = -c_11 / r1;
                c_x * &run.x + k0 * &m0 + k1 * m1 + k2 * m2
            }
        };
        run.x.assign(x_s)?;
        hist.push_front((m0, h));
        if hist.len() >= order {
            let (old, _) = hist.pop_back().expect("history is not empty");
            // Only buffers this loop wrote are reused; a model's own output is never written.
            spare = owned.then_some(old);
        }
        Ok(())
    })
}

/// The `x_0` prediction at `(x, t)` and whether it lives in a buffer of ours. A model
/// that predicts `x_0` (with no score terms) is used as is; otherwise the prediction is
/// written in one fused pass into `buf` (a spare history buffer, or a new one during the
/// first steps).
fn x0_at<S: GaussianKernel + ?Sized, G: Guide + ?Sized>(
    run: &Run<'_, S, G>,
    t: f64,
    buf: Option<Buffer>,
) -> Result<(Buffer, bool)> {
    let x0 = run.predict(&run.x, t, Prediction::X0)?;
    if let Some(out) = x0.as_tensor() {
        return Ok((Buffer::new(out.clone())?, false));
    }
    let buf = match buf {
        Some(b) => b,
        None => run.buffer()?,
    };
    buf.assign(x0)?;
    Ok((buf, true))
}
