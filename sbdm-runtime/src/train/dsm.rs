//! The denoising-score-matching objective of a score network ([`NetModel`]): the model
//! output at `x_t = a·x_0 + b·ε` regressed on its target (ε, x_0, v or the conditional
//! score) with the chosen [`Weighting`](super::Weighting) ([`super::loss`]). A
//! class-conditional network sees each row's label, replaced by the null label with
//! probability [`TrainConfig::label_dropout`] (for classifier-free guidance).

use candle_core::Tensor;
use rand::Rng;

use super::checkpoint::ModelKind;
use super::objective::{Objective, StepLoss};
use super::{loss, Draws, TrainConfig};
use crate::data::Dataset;
use crate::error::{invalid, Result};
use crate::model::net::{Coefficients, ModelConfig, NetForward, NetModel};
use crate::model::prediction::Prediction;
use crate::sde::GaussianKernel;

/// Denoising score matching of a [`NetModel`].
pub struct Dsm<S> {
    model: NetModel<S>,
}

impl<S: GaussianKernel> Dsm<S> {
    /// Trains `model` by denoising score matching.
    pub fn new(model: NetModel<S>) -> Self {
        Dsm { model }
    }
}

impl<S: GaussianKernel + Clone> Objective for Dsm<S> {
    type Model = NetModel<S>;

    fn model(&self) -> &NetModel<S> {
        &self.model
    }

    fn kind(&self) -> ModelKind {
        ModelKind::Score
    }

    fn model_config(&self) -> ModelConfig {
        self.model.config().clone()
    }

    fn check_data(&self, data: &Dataset, _data_name: &str) -> Result<()> {
        let want = self.model.config().net.sample_shape();
        let got = data.sample_shape();
        if want != got {
            return Err(invalid!(
                "the data's samples have shape {got:?} but the {} model expects {want:?}",
                self.model.config().net.name()
            ));
        }
        Ok(())
    }

    fn step_loss<'a>(&'a self, draws: Draws, cfg: &TrainConfig) -> Result<Box<dyn StepLoss + 'a>> {
        let Draws {
            mut rng,
            x0,
            labels,
            ts,
            eps,
        } = draws;
        let n = ts.len();
        let labels = match (self.model.config().net.num_classes(), labels) {
            (0, _) | (_, None) => None,
            (k, Some(y)) => {
                let mut y = y.to_vec1::<u32>()?;
                for v in y.iter_mut() {
                    if rng.random::<f64>() < cfg.label_dropout {
                        *v = k as u32;
                    }
                }
                Some(Tensor::from_vec(y, n, x0.device())?)
            }
        };
        let c = self.model.coefficients(&ts);
        let kind = self.model.config().output();
        let c_out = self
            .model
            .config()
            .precondition
            .then_some(c.c_out.as_slice());
        let weights = loss::row_weights(cfg.weighting, self.model.sde(), kind, &ts, c_out)?;
        let rates = loss::flow_rates(self.model.sde(), kind, &ts);
        Ok(Box::new(DsmLoss {
            net: self.model.forward_part(),
            kind,
            x0,
            eps,
            labels,
            c,
            rates,
            weights,
        }))
    }
}

/// One step's DSM loss.
struct DsmLoss<'a> {
    net: NetForward<'a>,
    kind: Prediction,
    x0: Tensor,
    eps: Tensor,
    labels: Option<Tensor>,
    c: Coefficients,
    /// The per-row `(ȧ, ḃ)` of a flow target (empty otherwise).
    rates: Vec<(f64, f64)>,
    /// The per-row weights of the batch mean.
    weights: Vec<f64>,
}

impl StepLoss for DsmLoss<'_> {
    fn rows(&self, s: usize, e: usize) -> Result<Tensor> {
        let rows = |t: &Tensor| t.narrow(0, s, e - s);
        let (x0, eps) = (rows(&self.x0)?, rows(&self.eps)?);
        let labels = self.labels.as_ref().map(rows).transpose()?;
        let c = self.c.rows(s, e);
        let xt = loss::perturb(&x0, &eps, &c.a, &c.b)?;
        let out = self.net.output_with(&xt, &c, labels.as_ref())?;
        let rates = self.rates.get(s..e).unwrap_or(&[]);
        let target = loss::target(self.kind, &x0, &eps, &c.a, &c.b, rates)?;
        // The rows' share of the batch mean.
        let share = (e - s) as f64 / self.weights.len() as f64;
        let w: Vec<f64> = self.weights[s..e].iter().map(|v| v * share).collect();
        loss::weighted_mse(&out, &target, &w)
    }
}
