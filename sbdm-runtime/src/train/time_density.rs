//! The density training times are drawn from, on the SDE's time range `[t_min, T]`.
//!
//! The DSM loss is an expectation over `t`; drawing `t` from a density `p(t)` instead of
//! uniformly multiplies the weighting by `p(t)·(T − t_min)` (no importance correction is
//! applied: that is the point, as in SD3). [`TimeDensity::LogitNormal`] is Esser et al.
//! (2024)'s logit-normal sampling for rectified flows: `t = t_min + (T − t_min)·σ(m + s·n)`,
//! `n ~ N(0, 1)`, `σ` the logistic function — more steps at the middle times, where
//! the velocity is hardest to predict (their best setting `m = 0, s = 1`).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Result};

/// How training times are drawn on `[t_min, T]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TimeDensity {
    /// `t ~ U(t_min, T)`.
    #[default]
    Uniform,
    /// `t = t_min + (T − t_min)·σ(mean + std·n)`, `n ~ N(0, 1)` (SD3's logit-normal).
    LogitNormal {
        /// The location `m` of the logit.
        mean: f64,
        /// The scale `s > 0` of the logit.
        std: f64,
    },
}

impl TimeDensity {
    /// The CLI names.
    pub const NAMES: [(&'static str, &'static str); 2] = [
        ("uniform", "t ~ U(t_min, T)"),
        (
            "logit-normal",
            "t = t_min + (T - t_min)·sigmoid(m + s·n), n ~ N(0, 1) (SD3), m = 0, s = 1; \
             logit-normal:M,S sets them",
        ),
    ];

    /// Parses a CLI name: `uniform`, `logit-normal` or `logit-normal:M,S`.
    pub fn from_name(name: &str) -> Result<TimeDensity> {
        let lower = name.to_ascii_lowercase();
        let (head, arg) = match lower.split_once(':') {
            Some((h, a)) => (h, Some(a)),
            None => (lower.as_str(), None),
        };
        match (head, arg) {
            ("uniform", None) => Ok(TimeDensity::Uniform),
            ("logit-normal", None) => Ok(TimeDensity::LogitNormal {
                mean: 0.0,
                std: 1.0,
            }),
            ("logit-normal", Some(args)) => {
                let parsed: Vec<f64> = args
                    .split(',')
                    .map(|v| v.trim().parse::<f64>())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| {
                        invalid!("logit-normal: `{args}` is not two numbers M,S (e.g. 0,1)")
                    })?;
                let [mean, std] = parsed[..] else {
                    return Err(invalid!(
                        "logit-normal: `{args}` is not two numbers M,S (e.g. 0,1)"
                    ));
                };
                TimeDensity::logit_normal(mean, std)
            }
            _ => Err(invalid!(
                "unknown time density `{name}`; valid: {}",
                TimeDensity::NAMES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    /// The logit-normal density with location `mean` and scale `std`.
    ///
    /// # Errors
    /// A `mean` that is not finite or a `std` that is not finite and `> 0`.
    pub fn logit_normal(mean: f64, std: f64) -> Result<TimeDensity> {
        if !mean.is_finite() {
            return Err(invalid!(
                "logit-normal: the location must be finite, got {mean}"
            ));
        }
        if !(std.is_finite() && std > 0.0) {
            return Err(invalid!(
                "logit-normal: the scale must be finite and > 0, got {std}"
            ));
        }
        Ok(TimeDensity::LogitNormal { mean, std })
    }

    /// The CLI name.
    pub fn name(&self) -> String {
        match self {
            TimeDensity::Uniform => "uniform".into(),
            TimeDensity::LogitNormal { mean, std } => format!("logit-normal:{mean},{std}"),
        }
    }

    /// One time on `[t0, t1]` from `rng` (one uniform, or one standard normal, drawn).
    pub fn draw(&self, t0: f64, t1: f64, rng: &mut ChaCha8Rng) -> f64 {
        match *self {
            TimeDensity::Uniform => t0 + (t1 - t0) * rng.random::<f64>(),
            TimeDensity::LogitNormal { mean, std } => {
                let n: f64 = rng.sample(StandardNormal);
                t0 + (t1 - t0) * logistic(mean + std * n)
            }
        }
    }

    /// The density at `t` on `[t0, t1]` (per unit of `t`): `1/(t1 − t0)` for
    /// [`TimeDensity::Uniform`], the logit-normal's `φ((logit u − m)/s)/(s·u·(1 − u))`
    /// at `u = (t − t0)/(t1 − t0)`, divided by `t1 − t0`.
    pub fn pdf(&self, t: f64, t0: f64, t1: f64) -> f64 {
        let width = t1 - t0;
        if !(t0..=t1).contains(&t) {
            return 0.0;
        }
        match *self {
            TimeDensity::Uniform => 1.0 / width,
            TimeDensity::LogitNormal { mean, std } => {
                let u = (t - t0) / width;
                if u <= 0.0 || u >= 1.0 {
                    return 0.0;
                }
                let z = ((u / (1.0 - u)).ln() - mean) / std;
                (-0.5 * z * z).exp()
                    / ((2.0 * std::f64::consts::PI).sqrt() * std * u * (1.0 - u) * width)
            }
        }
    }
}

/// `1/(1 + e^-x)`, without overflow for large `|x|`.
fn logistic(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}
