//! (being written)

use candle_core::Tensor;

use crate::error::{invalid, Result};
use crate::model::{Denoiser, ScoreModel};
use crate::sampler::SamplerConfig;
use crate::sde::GaussianKernel;

pub(crate) fn run<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    _den: &Denoiser<'_, S, M>,
    _x: &Tensor,
    _t_max: f64, _t_min: f64, _cfg: &SamplerConfig,
) -> Result<()> {
    Err(invalid!("not yet"))
}
