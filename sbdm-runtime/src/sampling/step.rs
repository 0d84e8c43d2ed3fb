//! The step algebra: a sampler step is a linear combination of a few tensors with scalar
//! coefficients, assigned to a buffer in fused passes over memory.
//!
//! A [`Buffer`] is a tensor a sampler owns and updates in place (the state, a stage, a
//! noise draw). A [`LinComb`] is `Σ c_i·v_i`; a model's prediction enters as one too,
//! `c_x·x + c_out·out` with its conversion folded in ([`super::Denoiser::predict_linear`]),
//! so no converted tensor is materialised. `f64 * &Buffer`, `f64 * LinComb` and `+` build
//! combinations, and [`Buffer::assign`] writes one:
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use sbdm_runtime::sampling::step::{Buffer, LinComb};
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let x = Buffer::new(Tensor::new(&[1f32, 2.0], &Device::Cpu)?)?;
//! let y = Buffer::new(Tensor::new(&[10f32, 20.0], &Device::Cpu)?)?;
//! let d = 0.5 * &x + 2.0 * &y;               // a prediction-like combination
//! x.assign(1.0 * &x + 0.1 * d)?;              // x ← 1.05·x + 0.2·y, one pass
//! assert_eq!(x.to_vec1::<f32>()?, [3.05, 6.1]);
//! # Ok(()) }
//! ```
//!
//! Terms of the same tensor are merged (their coefficients summed in the order written)
//! and zero coefficients dropped; the buffer's own term, if any, is read in the first
//! pass, and at most [`fused::MAX_SOURCES`] further tensors are read per pass.

use std::ops::{Add, Deref, Mul};

use candle_core::Tensor;

use super::fused;
use crate::error::Result;

/// A contiguous tensor a sampler updates in place: the state, a stage or a noise draw.
#[derive(Clone, Debug)]
pub struct Buffer(Tensor);

impl Buffer {
    /// Wraps `t` (copied into a fresh contiguous buffer if it is not contiguous).
    pub fn new(t: Tensor) -> Result<Buffer> {
        Ok(Buffer(t.contiguous()?))
    }

    /// A fresh copy of `t`, which is not modified by later assignments.
    pub fn copy_of(t: &Tensor) -> Result<Buffer> {
        Ok(Buffer(t.contiguous()?.copy()?))
    }

    /// A zero buffer of `t`'s shape and dtype.
    pub fn zeros_like(t: &Tensor) -> Result<Buffer> {
        Ok(Buffer(t.zeros_like()?))
    }

    /// The tensor.
    pub fn tensor(&self) -> &Tensor {
        &self.0
    }

    /// The tensor, by value.
    pub fn into_tensor(self) -> Tensor {
        self.0
    }

    /// `self ← value`, in place, in `⌈n/2⌉` fused passes for `n` tensors other than
    /// `self` (one pass when at most two). Fails on a non-finite value (see
    /// [`fused::is_non_finite`]).
    pub fn assign(&self, value: LinComb) -> Result<()> {
        let terms = value.merged();
        let own = terms.iter().position(|(_, v)| v.id() == self.0.id());
        let c_own = own.map(|i| terms[i].0);
        let mut others = terms
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != own)
            .map(|(_, (c, v))| (*c, v));
        let mut pass = |c_x: Option<f64>| -> Option<Vec<(f64, &Tensor)>> {
            let chunk: Vec<(f64, &Tensor)> = others.by_ref().take(fused::MAX_SOURCES).collect();
            (!chunk.is_empty() || c_x.is_some()).then_some(chunk)
        };
        // The first pass reads `self` only if it is a term; later passes accumulate.
        let first = pass(c_own).unwrap_or_default();
        fused::combine(&self.0, c_own, &first)?;
        while let Some(chunk) = pass(None).filter(|c| !c.is_empty()) {
            fused::combine(&self.0, Some(1.0), &chunk)?;
        }
        Ok(())
    }
}

impl Deref for Buffer {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        &self.0
    }
}

/// A linear combination `Σ c_i·v_i` of tensors with scalar coefficients.
#[derive(Clone, Debug, Default)]
pub struct LinComb {
    terms: Vec<(f64, Tensor)>,
}

impl LinComb {
    /// `c·v`.
    pub fn term(c: f64, v: &Tensor) -> LinComb {
        LinComb {
            terms: vec![(c, v.clone())],
        }
    }

    /// The terms as written, `(c_i, v_i)`.
    pub fn terms(&self) -> &[(f64, Tensor)] {
        &self.terms
    }

    /// The terms with those of the same tensor merged (coefficients summed in the order
    /// written) and zero coefficients dropped.
    pub fn merged(&self) -> Vec<(f64, Tensor)> {
        let mut out: Vec<(f64, Tensor)> = Vec::with_capacity(self.terms.len());
        for (c, v) in &self.terms {
            match out.iter_mut().find(|(_, w)| w.id() == v.id()) {
                Some((acc, _)) => *acc += c,
                None => out.push((*c, v.clone())),
            }
        }
        out.retain(|(c, _)| *c != 0.0);
        out
    }

    /// The single tensor this combination equals, if it is `1·v`.
    pub fn as_tensor(&self) -> Option<&Tensor> {
        match self.merged().as_slice() {
            [(c, v)] if *c == 1.0 => self.terms.iter().map(|(_, t)| t).find(|t| t.id() == v.id()),
            _ => None,
        }
    }

    /// The combination as a new tensor of `like`'s shape and dtype (one fused pass per
    /// two terms).
    pub fn evaluate(self, like: &Tensor) -> Result<Tensor> {
        let out = Buffer::zeros_like(like)?;
        out.assign(self)?;
        Ok(out.into_tensor())
    }
}

impl Add for LinComb {
    type Output = LinComb;
    fn add(mut self, rhs: LinComb) -> LinComb {
        self.terms.extend(rhs.terms);
        self
    }
}

impl Mul<LinComb> for f64 {
    type Output = LinComb;
    fn mul(self, mut rhs: LinComb) -> LinComb {
        for (c, _) in &mut rhs.terms {
            *c *= self;
        }
        rhs
    }
}

impl Mul<&LinComb> for f64 {
    type Output = LinComb;
    fn mul(self, rhs: &LinComb) -> LinComb {
        self * rhs.clone()
    }
}

impl Mul<&Buffer> for f64 {
    type Output = LinComb;
    fn mul(self, rhs: &Buffer) -> LinComb {
        LinComb::term(self, &rhs.0)
    }
}

impl From<&Buffer> for LinComb {
    fn from(b: &Buffer) -> LinComb {
        LinComb::term(1.0, &b.0)
    }
}
