//! AdamW with inspectable state (so checkpoints can resume it exactly), global
//! gradient-norm clipping and an exponential moving average of the weights.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::error::{invalid, Result};

/// AdamW (Loshchilov & Hutter): decoupled weight decay, bias-corrected moments.
pub struct AdamW {
    /// `β₁`.
    pub beta1: f64,
    /// `β₂`.
    pub beta2: f64,
    /// `ε`.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Steps taken (bias correction).
    pub t: u64,
    /// First moments, one per variable (same order as the variables).
    pub m: Vec<Tensor>,
    /// Second moments.
    pub v: Vec<Tensor>,
}

impl AdamW {
    /// Zero moments for `vars`.
    pub fn new(vars: &[Var], beta1: f64, beta2: f64, eps: f64, weight_decay: f64) -> Result<Self> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        Ok(AdamW {
            beta1,
            beta2,
            eps,
            weight_decay,
            t: 0,
            m: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            v: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
        })
    }

    /// One update of `vars` with gradients `grads` (each scaled by `scale`, for clipping)
    /// and learning rate `lr`. Variables without a gradient are left alone.
    pub fn step(&mut self, vars: &[Var], grads: &GradStore, lr: f64, scale: f64) -> Result<()> {
        if vars.len() != self.m.len() {
            return Err(invalid!(
                "optimiser state has {} tensors for {} variables",
                self.m.len(),
                vars.len()
            ));
        }
        self.t += 1;
        let t = self.t as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        for (i, var) in vars.iter().enumerate() {
            let Some(g) = grads.get(var) else { continue };
            let g = if scale == 1.0 {
                g.clone()
            } else {
                g.affine(scale, 0.0)?
            };
            let m = ((&self.m[i] * self.beta1)? + (&g * (1.0 - self.beta1))?)?;
            let v = ((&self.v[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let denom = ((&v * (1.0 / bc2))?.sqrt()? + self.eps)?;
            let upd = ((&m * (lr / bc1))? / denom)?;
            // Detached: no op graph may link successive weights (memory would grow).
            let theta = var.as_tensor().detach();
            let decayed = if self.weight_decay > 0.0 {
                (&theta * (1.0 - lr * self.weight_decay))?
            } else {
                theta
            };
            var.set(&(decayed - upd)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}

/// The global L2 norm of the gradients of `vars`.
pub fn grad_norm(vars: &[Var], grads: &GradStore) -> Result<f64> {
    let mut sq = 0.0f64;
    for v in vars {
        if let Some(g) = grads.get(v) {
            sq += f64::from(g.sqr()?.sum_all()?.to_scalar::<f32>()?);
        }
    }
    Ok(sq.sqrt())
}

/// An exponential moving average of the weights: `e ← d·e + (1 − d)·w`.
pub struct Ema {
    /// The decay `d`.
    pub decay: f64,
    /// The averages, one per variable.
    pub values: Vec<Tensor>,
}

impl Ema {
    /// Starts the averages at the current weights.
    pub fn new(vars: &[Var], decay: f64) -> Result<Self> {
        Ok(Ema {
            decay,
            values: vars
                .iter()
                .map(|v| v.as_tensor().detach().copy())
                .collect::<candle_core::Result<_>>()?,
        })
    }

    /// Folds the current weights in. The decay warms up as `min(d, (1 + k)/(10 + k))` at
    /// update `k` (so early averages are not dominated by the initialisation).
    pub fn update(&mut self, vars: &[Var], k: u64) -> Result<()> {
        let d = self.decay.min((1.0 + k as f64) / (10.0 + k as f64));
        for (e, v) in self.values.iter_mut().zip(vars) {
            // Detached, so successive averages do not chain an op graph.
            *e = ((&*e * d)? + (v.as_tensor().detach() * (1.0 - d))?)?;
        }
        Ok(())
    }
}
