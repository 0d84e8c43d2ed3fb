//! The score model of `--model`, shared by `sbdm sample`, `translate` and `inpaint`: an
//! exact Gaussian mixture (`gmm:FILE.json`) or a trained network (`ckpt:FILE.safetensors`,
//! read once), with the SDE named by `--sde` or, for a checkpoint, the one it was trained for.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use candle_core::{Device, Tensor};
use sbdm_runtime::model::classifier::ClassifierModel;
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::model::net::NetModel;
use sbdm_runtime::sde::named;
use sbdm_runtime::train::{checkpoint, load_classifier, model_from_checkpoint};
use sbdm_runtime::{io, limits};
use sbdm_runtime::{GaussianKernel, Sde};

use crate::common::one_line;
use crate::sde_arg::ChosenSde;

/// `--model` before it is loaded.
pub enum ModelSpec {
    /// `gmm:FILE.json`.
    Mixture(PathBuf),
    /// `ckpt:FILE.safetensors`.
    Checkpoint(PathBuf),
}

impl ModelSpec {
    pub fn parse(spec: &str) -> Result<ModelSpec> {
        if let Some(file) = spec.strip_prefix("gmm:") {
            return Ok(ModelSpec::Mixture(file.into()));
        }
        if let Some(file) = spec.strip_prefix("ckpt:") {
            return Ok(ModelSpec::Checkpoint(file.into()));
        }
        bail!(
            "unknown model `{spec}`; valid: gmm:FILE.json (the exact score of a Gaussian \
             mixture), ckpt:FILE.safetensors (a network trained by `sbdm train`)"
        )
    }

    /// The SDE chosen by `--sde` (or declared inline) or, for a checkpoint, the one it
    /// was trained for, and the model for it (a checkpoint is read once), with a network's
    /// weights on `device` (a mixture's oracle runs on the CPU whatever the device of the
    /// batch).
    pub fn load_on(
        &self,
        chosen: Option<ChosenSde>,
        device: &Device,
    ) -> Result<(String, Arc<dyn GaussianKernel>, Source)> {
        match self {
            ModelSpec::Mixture(path) => {
                let chosen = chosen.ok_or_else(|| {
                    anyhow!("missing --sde (see the command's --help): a mixture's score depends on the SDE")
                })?;
                let mixture = GaussianMixture::load(path).map_err(one_line)?;
                Ok((chosen.name, chosen.sde, Source::Mixture(mixture)))
            }
            ModelSpec::Checkpoint(path) => {
                let ck = checkpoint::load(path, device).map_err(one_line)?;
                let (name, sde) = match chosen {
                    Some(c) => (c.name, c.sde),
                    None => trained_for(&ck.info, path)?,
                };
                let model = model_from_checkpoint(&ck, sde.clone(), true).map_err(one_line)?;
                Ok((
                    name,
                    sde,
                    Source::Net(Box::new(model), ck.info.data.clone()),
                ))
            }
        }
    }
}

/// The SDE a checkpoint was trained for: a named SDE with the same kernel (so that the
/// discrete tables keep their names), else the declaration stored in the file, derived
/// again.
fn trained_for(
    info: &checkpoint::CheckpointInfo,
    path: &Path,
) -> Result<(String, Arc<dyn GaussianKernel>)> {
    if let Some(name) = named::find(|s| checkpoint::check_sde(info, s, path).is_ok()) {
        return Ok((
            name.to_string(),
            Arc::from(named::by_name(name).map_err(one_line)?),
        ));
    }
    match info.stored_sde(path).map_err(one_line)? {
        Some(sde) => Ok((sde.name().to_string(), Arc::new(sde))),
        None => bail!(
            "{}: the checkpoint was trained for the SDE {}, which is not a named SDE and \
             the file holds no declaration of it; give it with --sde FILE.sde",
            path.display(),
            info.sde
        ),
    }
}

/// The score model of `--model`.
pub enum Source {
    /// The exact score of a Gaussian mixture.
    Mixture(GaussianMixture),
    /// A trained network with its EMA weights, and the name of its training data.
    Net(Box<NetModel<Arc<dyn GaussianKernel>>>, Option<String>),
}

impl Source {
    /// The shape of one sample: `[D]` or `[C, H, W]`.
    pub fn sample_shape(&self) -> Vec<usize> {
        match self {
            Source::Mixture(m) => vec![m.dim()],
            Source::Net(m, _) => m.config().net.sample_shape(),
        }
    }
}

/// The f32 copies of every sample a run on a batch holds: the state, the noise, model
/// outputs, a multistep sampler's history or rk45's stages, with room to spare.
pub const SAMPLE_COPIES: u128 = 16;

/// Refuses a run on `n` samples of the model's shape when it would not fit in the
/// memory budget ([`limits`]): [`SAMPLE_COPIES`] f32 copies of each sample, a network's
/// forward pass ([`NetConfig::activations_per_sample`](sbdm_runtime::nn::NetConfig::activations_per_sample))
/// and `extra` bytes per sample of the command's own. `what` names the flag and its
/// value (`--n 1000`).
pub fn check_samples(
    n: usize,
    source: &Source,
    extra: u128,
    what: impl std::fmt::Display,
) -> Result<()> {
    let shape = source.sample_shape();
    let activations = match source {
        Source::Mixture(_) => 0,
        Source::Net(net, _) => net.config().net.activations_per_sample(),
    };
    let per = limits::elems(&shape)
        .saturating_mul(SAMPLE_COPIES)
        .saturating_add(activations)
        .saturating_mul(4)
        .saturating_add(extra);
    limits::check(
        format_args!("{what} (samples of shape {})", shape_text(&shape)),
        per.saturating_mul(n as u128),
    )
    .map_err(one_line)
}

/// A sample shape for messages: `2` or `1x16x16`.
pub fn shape_text(shape: &[usize]) -> String {
    shape
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

/// Reads a batch of samples for the model: a finite float32 array `[N, ..shape]` with
/// `N ≥ 1` (`what` names it in messages: `x_T`, `the source`, `the image`).
pub fn read_batch(path: &Path, shape: &[usize], what: &str) -> Result<Tensor> {
    let x = io::read_npy(path, 1 + shape.len()).map_err(one_line)?;
    let got = &x.dims()[1..];
    if got != shape {
        if let ([dx], [d]) = (got, shape) {
            bail!(
                "{}: {what} has dimension {dx} but the model has dimension {d}",
                path.display()
            );
        }
        bail!(
            "{}: {what} holds samples of shape {got:?} but the model's have shape {shape:?}",
            path.display()
        );
    }
    let n = x.dim(0)?;
    if n == 0 {
        bail!("{}: {what} has no rows", path.display());
    }
    let flat: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let per = flat.len() / n;
    if let Some(i) = flat.iter().position(|v| !v.is_finite()) {
        bail!(
            "{}: row {} of {what} is not finite",
            path.display(),
            i / per
        );
    }
    Ok(x)
}

/// A trained classifier for an SDE named at run time.
pub type Classifier = ClassifierModel<Arc<dyn GaussianKernel>>;

/// A classifier checkpoint `ckpt:FILE` for the SDE `sde`, with its training data's name,
/// its weights on `device`.
pub fn load_classifier_spec_on(
    spec: &str,
    sde: &Arc<dyn GaussianKernel>,
    device: &Device,
) -> Result<(Classifier, Option<String>)> {
    let path = spec
        .strip_prefix("ckpt:")
        .ok_or_else(|| anyhow!("--classifier must be ckpt:FILE.safetensors, got `{spec}`"))?;
    let (clf, info) = load_classifier(path, sde.clone(), true, device).map_err(one_line)?;
    Ok((clf, info.data))
}
