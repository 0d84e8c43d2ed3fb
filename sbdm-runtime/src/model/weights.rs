//! A model's trainable weights, and what the trainer needs of a model.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

use crate::error::{invalid, Result};
use crate::nn::seeded_varbuilder;
use crate::sde::GaussianKernel;

/// A model's weights: a candle [`VarMap`] filled through the seeded variable builder (each
/// weight a pure function of the seed and its name), on one device.
pub struct Weights {
    varmap: VarMap,
    device: Device,
    /// What owns them (`model`, `classifier`), for messages.
    owner: &'static str,
}

impl Weights {
    /// Weights created by `build` (a network constructor) from `seed`, for `owner`.
    pub fn init<T>(
        owner: &'static str,
        seed: u64,
        device: &Device,
        build: impl FnOnce(VarBuilder) -> Result<T>,
    ) -> Result<(Weights, T)> {
        let varmap = VarMap::new();
        let built = build(seeded_varbuilder(&varmap, seed, DType::F32, device))?;
        let weights = Weights {
            varmap,
            device: device.clone(),
            owner,
        };
        Ok((weights, built))
    }

    /// The variables.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The device they live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The variables as `(name, var)`, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        let data = self.varmap.data().lock().expect("varmap lock");
        let mut v: Vec<_> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Overwrites the variables by name, converted to their dtype and device; every
    /// variable must be given, with its shape.
    pub fn set(&self, weights: &[(String, Tensor)]) -> Result<()> {
        let what = self.owner;
        let vars = self.vars();
        if vars.len() != weights.len() {
            return Err(invalid!(
                "the {what} has {} weight tensors, {} were given",
                vars.len(),
                weights.len()
            ));
        }
        let map: std::collections::HashMap<&str, &Tensor> =
            weights.iter().map(|(k, v)| (k.as_str(), v)).collect();
        for (name, var) in &vars {
            let w = map
                .get(name.as_str())
                .ok_or_else(|| invalid!("weight `{name}` is missing"))?;
            if w.dims() != var.dims() {
                return Err(invalid!(
                    "weight `{name}` has shape {:?}, the {what} expects {:?}",
                    w.dims(),
                    var.dims()
                ));
            }
            var.set(&w.to_dtype(var.dtype())?.to_device(&self.device)?)?;
        }
        Ok(())
    }
}

/// A model with trainable weights for an SDE: what a
/// [`Trainer`](crate::train::Trainer) needs of it.
pub trait Trainable: Sized {
    /// The SDE it is for.
    fn sde_dyn(&self) -> &dyn GaussianKernel;
    /// Its weights.
    fn weights(&self) -> &Weights;
    /// A model of the same configuration, freshly initialised from `seed`.
    fn fresh(&self, seed: u64) -> Result<Self>;
    /// A model of the same configuration carrying `weights`.
    fn with_weights(&self, weights: &[(String, Tensor)]) -> Result<Self> {
        let m = self.fresh(0)?;
        m.weights().set(weights)?;
        Ok(m)
    }
}
