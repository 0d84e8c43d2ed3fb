//! The low-pass filter `φ_N = up(down(·))` of ILVR and EGSDE: down-sampling by an integer
//! factor `N` with an antialiasing box filter (the mean of each `N×N` block; of each group
//! of `N` consecutive coordinates for vectors), then nearest up-sampling. `φ_N` is an
//! orthogonal projection (`φ_N² = φ_N = φ_Nᵀ`), so `‖φ_N(x) − φ_N(y)‖²` has the gradient
//! `2·(φ_N(x) − φ_N(y))`. Built from reshapes and means, it is differentiable.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use sbdm_runtime::guide::LowPass;
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let x = Tensor::new(&[[1f32, 3.0, 10.0, 20.0]], &Device::Cpu)?;
//! let phi = LowPass::new(2)?;                   // average coordinate pairs
//! assert_eq!(phi.apply(&x)?.to_vec2::<f32>()?, [[2.0, 2.0, 15.0, 15.0]]);
//! assert!(LowPass::new(3).is_err());            // a power of two
//! assert!(phi.check(&[3]).is_err());            // 3 coordinates do not split into pairs
//! # Ok(()) }
//! ```

use candle_core::Tensor;

use crate::error::{invalid, Result};

/// `φ_N`, the block-mean low-pass filter of factor `N` (a power of two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LowPass {
    factor: usize,
}

impl LowPass {
    /// The filter of factor `n`, a power of two (1 is the identity).
    pub fn new(n: usize) -> Result<LowPass> {
        if !n.is_power_of_two() {
            return Err(invalid!(
                "the low-pass factor N must be a power of two (1, 2, 4, ...), got {n}"
            ));
        }
        Ok(LowPass { factor: n })
    }

    /// `N`.
    pub fn factor(&self) -> usize {
        self.factor
    }

    /// Refuses samples of `shape` (`[D]` or `[C, H, W]`) the filter does not fit.
    pub fn check(&self, shape: &[usize]) -> Result<()> {
        let n = self.factor;
        match shape {
            [d] if n <= *d && d % n == 0 => Ok(()),
            [d] => Err(invalid!(
                "the low-pass factor N = {n} does not divide the dimension {d}"
            )),
            [_, h, w] if n <= *h && n <= *w && h % n == 0 && w % n == 0 => Ok(()),
            [_, h, w] => Err(invalid!(
                "the low-pass factor N = {n} is larger than the {h}x{w} image or does not divide it"
            )),
            s => Err(invalid!(
                "the low-pass filter works on vectors [D] or images [C, H, W], not samples of shape {s:?}"
            )),
        }
    }

    /// `φ_N(x)` for a batch `x` `[B, D]` or `[B, C, H, W]` (of any float dtype).
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        self.check(&dims[1..])?;
        let n = self.factor;
        if n == 1 {
            return Ok(x.clone());
        }
        let blocks = match dims[..] {
            [b, d] => {
                let g = x.reshape((b, d / n, n))?.mean_keepdim(2)?;
                g.broadcast_as((b, d / n, n))?
            }
            [b, c, h, w] => {
                let g = x
                    .reshape(vec![b, c, h / n, n, w / n, n])?
                    .mean_keepdim(5)?
                    .mean_keepdim(3)?;
                g.broadcast_as(vec![b, c, h / n, n, w / n, n])?
            }
            _ => unreachable!("checked above"),
        };
        Ok(blocks.contiguous()?.reshape(dims)?)
    }
}
