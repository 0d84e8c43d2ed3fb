//! The SDEs known by name — the built-ins and the discrete DDPM tables, each of the three
//! also rescaled to zero terminal SNR (`-zsnr`: Lin et al. 2023, pure noise at `t = 1`) —
//! for the CLI and for checkpoints, which record the SDE they were trained for.
//!
//! ```
//! use sbdm_runtime::sde::named;
//! let vp = named::by_name("vp")?;
//! assert_eq!(vp.name(), "VpSde");
//! assert!(named::by_name("vq").err().unwrap().to_string().contains("ddpm-linear"));
//! assert_eq!(named::ALL.iter().find(|s| s.name == "ddpm-linear").unwrap().num_train, Some(1000));
//! let zsnr = named::by_name("ddpm-scaled-linear-zsnr")?;
//! assert!(zsnr.is_pure_noise(1.0));
//! # Ok::<(), sbdm_runtime::error::Error>(())
//! ```

use super::builtin;
use super::discrete::{BetaSchedule, DiscreteSchedule};
use super::GaussianKernel;
use crate::error::{invalid, Result};

/// An SDE known by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NamedSde {
    /// The name (`vp`, `ddpm-linear`, ...).
    pub name: &'static str,
    /// A one-line description.
    pub description: &'static str,
    /// For a discrete DDPM table: its number of training timesteps.
    pub num_train: Option<usize>,
}

/// The number of training timesteps of the named discrete tables.
pub const DISCRETE_STEPS: usize = 1000;

const fn builtin(name: &'static str, description: &'static str) -> NamedSde {
    NamedSde {
        name,
        description,
        num_train: None,
    }
}

const fn table(name: &'static str, description: &'static str) -> NamedSde {
    NamedSde {
        name,
        description,
        num_train: Some(DISCRETE_STEPS),
    }
}

/// Every SDE known by name: [`builtin::NAMES`], the discrete tables, then the same tables
/// rescaled to zero terminal SNR.
pub const ALL: [NamedSde; 13] = [
    builtin(builtin::NAMES[0].0, builtin::NAMES[0].1),
    builtin(builtin::NAMES[1].0, builtin::NAMES[1].1),
    builtin(builtin::NAMES[2].0, builtin::NAMES[2].1),
    builtin(builtin::NAMES[3].0, builtin::NAMES[3].1),
    builtin(builtin::NAMES[4].0, builtin::NAMES[4].1),
    builtin(builtin::NAMES[5].0, builtin::NAMES[5].1),
    builtin(builtin::NAMES[6].0, builtin::NAMES[6].1),
    table(
        "ddpm-linear",
        "discrete DDPM table, linear beta 1e-4..0.02, 1000 steps",
    ),
    table(
        "ddpm-scaled-linear",
        "discrete table, scaled-linear beta 0.00085..0.012, 1000 steps (latent diffusion)",
    ),
    table(
        "ddpm-cosine",
        "discrete table, squaredcos_cap_v2 (Nichol & Dhariwal), 1000 steps",
    ),
    table(
        "ddpm-linear-zsnr",
        "ddpm-linear rescaled to zero terminal SNR (Lin et al. 2023): pure noise at T",
    ),
    table(
        "ddpm-scaled-linear-zsnr",
        "ddpm-scaled-linear rescaled to zero terminal SNR (Lin et al. 2023): pure noise at T",
    ),
    table(
        "ddpm-cosine-zsnr",
        "ddpm-cosine rescaled to zero terminal SNR (Lin et al. 2023): pure noise at T",
    ),
];

/// The SDE named `name` (case, `-` and `_` ignored), with its default parameters; an
/// unknown name is an error listing the valid ones.
pub fn by_name(name: &str) -> Result<Box<dyn GaussianKernel>> {
    let Some(entry) = entry(name) else {
        let names: Vec<&str> = ALL.iter().map(|s| s.name).collect();
        return Err(invalid!(
            "unknown SDE `{name}`; valid: {}",
            names.join(", ")
        ));
    };
    let (table, zero_snr) = match entry.name.strip_suffix("-zsnr") {
        Some(table) => (table, true),
        None => (entry.name, false),
    };
    let kind = match table {
        "ddpm-linear" => BetaSchedule::linear(),
        "ddpm-scaled-linear" => BetaSchedule::scaled_linear(),
        "ddpm-cosine" => BetaSchedule::squaredcos_cap_v2(),
        other => {
            return builtin::by_name(other)
                .ok_or_else(|| invalid!("the built-in SDE `{other}` is missing"))
        }
    };
    let sde = if zero_snr {
        DiscreteSchedule::zero_terminal_snr(kind, DISCRETE_STEPS)
    } else {
        DiscreteSchedule::new(kind, DISCRETE_STEPS)
    };
    Ok(Box::new(sde.map_err(|e| invalid!("{name}: {e}"))?))
}

/// The entry of `name` (case, `-` and `_` ignored).
pub fn entry(name: &str) -> Option<&'static NamedSde> {
    let canonical = |s: &str| s.to_ascii_lowercase().replace(['-', '_'], "");
    ALL.iter().find(|s| canonical(s.name) == canonical(name))
}

/// The name of the known SDE that `matches`, e.g. the one a checkpoint was trained for.
pub fn find(matches: impl Fn(&dyn GaussianKernel) -> bool) -> Option<&'static str> {
    ALL.iter()
        .find(|s| by_name(s.name).is_ok_and(|sde| matches(sde.as_ref())))
        .map(|s| s.name)
}
