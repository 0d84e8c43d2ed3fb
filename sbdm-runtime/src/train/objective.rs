//! What a [`Trainer`](super::Trainer) optimises: a model's weights and the loss of a
//! step's batch. The trainer owns everything else once — batches, chunked threads,
//! clipping, AdamW, EMA, checkpoints.

use candle_core::Tensor;

use super::checkpoint::ModelKind;
use super::{Draws, TrainConfig};
use crate::data::Dataset;
use crate::error::Result;
use crate::model::net::ModelConfig;
use crate::model::Trainable;

/// A training objective: the model it trains and the loss it minimises.
pub trait Objective {
    /// The model trained (what [`Trainer::ema_model`](super::Trainer::ema_model) returns).
    type Model: Trainable;

    /// The model with its current weights.
    fn model(&self) -> &Self::Model;

    /// What checkpoints record the model as.
    fn kind(&self) -> ModelKind;

    /// The model configuration checkpoints record (and a resumed run must match).
    fn model_config(&self) -> ModelConfig;

    /// Refuses data the model cannot be trained on (shape, labels), naming `data_name`.
    fn check_data(&self, data: &Dataset, data_name: &str) -> Result<()>;

    /// The loss of a step's batch (`draws`, drawn from the step's stream; any further
    /// randomness of the step continues `draws.rng`).
    fn step_loss<'a>(&'a self, draws: Draws, cfg: &TrainConfig) -> Result<Box<dyn StepLoss + 'a>>;
}

/// One step's loss, by row ranges that parallel threads evaluate.
pub trait StepLoss: Sync {
    /// The loss of rows `start..end` as their share of the batch mean, so the parts sum
    /// to the batch's loss (and their gradients to its gradient).
    fn rows(&self, start: usize, end: usize) -> Result<Tensor>;
}
