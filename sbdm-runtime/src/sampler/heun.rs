//! (being written)

use candle_core::Tensor;

use crate::error::{invalid, Result};
use crate::model::{Denoiser, ScoreModel};
use crate::noise::Noise;
use crate::sampler::SamplerConfig;
use crate::sde::GaussianKernel;

pub(crate) fn run<S: GaussianKernel + ?Sized, M: ScoreModel + ?Sized>(
    _den: &Denoiser<'_, S, M>,
    _x: &Tensor,
    _ts: &[f64], _cfg: &SamplerConfig, _noise: &mut Noise,
) -> Result<()> {
    Err(invalid!("not yet"))
}
