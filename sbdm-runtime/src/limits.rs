//! Sizes that come from input, checked before anything is allocated.
//!
//! Every count a user or a file gives (sampling steps, samples, batch sizes, the shape in
//! a `.npy` header, a checkpoint's tensors and model widths) is turned into the bytes it
//! would need and compared here with a memory budget, so that an absurd value is refused
//! in one line naming it instead of aborting the process on allocation:
//!
//! ```
//! use sbdm_runtime::limits::{self, Budget};
//! let budget = Budget::fixed(1 << 30); // 1 GiB
//! let need = limits::bytes(&[1_000_000_000_000, 2], 4); // 10^12 f32 pairs
//! let err = budget.check("--n 1000000000000", need).unwrap_err().to_string();
//! assert!(err.starts_with("--n 1000000000000 needs about 7.3 TiB of memory"), "{err}");
//! assert!(budget.check("--n 1000", limits::bytes(&[1000, 2], 4)).is_ok());
//! ```
//!
//! The budget ([`Budget::current`]): `SBDM_MEMORY_LIMIT` when set (bytes, or a number
//! with `K`, `M`, `G` or `T`, binary units); otherwise the memory the system reports
//! available (`MemAvailable` in `/proc/meminfo`, lowered to the room left under a cgroup
//! v2 `memory.max` when there is one); otherwise, where neither can be read,
//! [`FALLBACK_BUDGET`]. The estimates are deliberately rough (within a small factor of
//! what a run holds): the check is there to refuse sizes that cannot fit, not to
//! predict a run's peak memory.

use std::fmt;

use crate::error::{invalid, Result};

/// The environment variable that sets the memory budget.
pub const ENV: &str = "SBDM_MEMORY_LIMIT";

/// The budget where neither `SBDM_MEMORY_LIMIT` nor `/proc/meminfo` gives one: 8 GiB.
pub const FALLBACK_BUDGET: u64 = 8 << 30;

/// Where a [`Budget`] comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetSource {
    /// `SBDM_MEMORY_LIMIT`.
    Env,
    /// `MemAvailable` in `/proc/meminfo` (or the room under a cgroup's `memory.max`).
    Available,
    /// [`FALLBACK_BUDGET`].
    Fallback,
    /// Given by the caller ([`Budget::fixed`]).
    Fixed,
}

/// The memory a run may plan to use, and where that figure comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Bytes.
    pub bytes: u64,
    /// Where it comes from.
    pub source: BudgetSource,
}

impl Budget {
    /// A budget of `bytes`.
    pub fn fixed(bytes: u64) -> Budget {
        Budget {
            bytes,
            source: BudgetSource::Fixed,
        }
    }

    /// The budget now (see the [module docs](self)); an `SBDM_MEMORY_LIMIT` that is not
    /// a size is an error.
    pub fn current() -> Result<Budget> {
        if let Ok(text) = std::env::var(ENV) {
            let bytes = parse_size(&text).ok_or_else(|| {
                invalid!("{ENV}=`{text}` is not a size: give bytes, or a number with K, M, G or T")
            })?;
            return Ok(Budget {
                bytes,
                source: BudgetSource::Env,
            });
        }
        Ok(match available() {
            Some(bytes) => Budget {
                bytes,
                source: BudgetSource::Available,
            },
            None => Budget {
                bytes: FALLBACK_BUDGET,
                source: BudgetSource::Fallback,
            },
        })
    }

    /// Refuses `need` bytes when they exceed the budget: the error names `what` (the
    /// flag or file and its value), the bytes needed and the budget.
    pub fn check(&self, what: impl fmt::Display, need: u128) -> Result<()> {
        if need <= u128::from(self.bytes) {
            return Ok(());
        }
        Err(invalid!(
            "{what} needs about {} of memory, more than {self}",
            human(need)
        ))
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let size = human(u128::from(self.bytes));
        match self.source {
            BudgetSource::Env => write!(f, "the {size} {ENV} allows"),
            BudgetSource::Available => write!(
                f,
                "the {size} available (MemAvailable in /proc/meminfo; set {ENV} to change the budget)"
            ),
            BudgetSource::Fallback => write!(
                f,
                "the {size} budget (available memory unknown; set {ENV} to change it)"
            ),
            BudgetSource::Fixed => write!(f, "the budget of {size}"),
        }
    }
}

/// Needs up to this many bytes (1 MiB) are never refused, so that small allocations do
/// not read the budget.
pub const ALWAYS_ALLOWED: u128 = 1 << 20;

/// Checks `need` bytes against the [current](Budget::current) budget (see
/// [`Budget::check`]); needs up to [`ALWAYS_ALLOWED`] pass without reading it.
pub fn check(what: impl fmt::Display, need: u128) -> Result<()> {
    if need <= ALWAYS_ALLOWED {
        return Ok(());
    }
    Budget::current()?.check(what, need)
}

/// Bytes per step of a time grid: its `f64` time and up to three `f64` coefficients a
/// sampler precomputes per step.
pub const GRID_BYTES_PER_STEP: u128 = 32;

/// The bytes a time grid of `steps` steps needs ([`GRID_BYTES_PER_STEP`] per time).
pub fn grid_bytes(steps: usize) -> u128 {
    (steps as u128 + 1).saturating_mul(GRID_BYTES_PER_STEP)
}

/// The number of elements of `shape`, saturating (never overflows).
pub fn elems(shape: &[usize]) -> u128 {
    shape
        .iter()
        .fold(1u128, |n, &d| n.saturating_mul(d as u128))
}

/// The bytes of `shape` at `size` bytes per element, saturating.
pub fn bytes(shape: &[usize], size: usize) -> u128 {
    elems(shape).saturating_mul(size as u128)
}

/// Bytes in binary units, one decimal: `7.3 TiB`, `512 B`.
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    for unit in UNITS {
        if v < 1024.0 {
            return format!("{v:.1} {unit}");
        }
        v /= 1024.0;
    }
    format!("{:.1e} B", bytes as f64)
}

/// `1234`, `64K`, `1.5G`, `2TiB` (binary units, an optional `B`/`iB`).
fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (number, shift) = match t.chars().last()?.to_ascii_uppercase() {
        'K' => (&t[..t.len() - 1], 10),
        'M' => (&t[..t.len() - 1], 20),
        'G' => (&t[..t.len() - 1], 30),
        'T' => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    let v: f64 = number.trim().parse().ok()?;
    let bytes = v * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// `MemAvailable`, lowered to the room under a cgroup v2 `memory.max`.
fn available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let mut bytes = kib.saturating_mul(1024);
    let read = |p: &str| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    if let Some(max) = read("/sys/fs/cgroup/memory.max") {
        let used = read("/sys/fs/cgroup/memory.current").unwrap_or(0);
        bytes = bytes.min(max.saturating_sub(used));
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1234"), Some(1234));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("2TiB"), Some(2 << 40));
        assert_eq!(parse_size("3 MB"), Some(3 << 20));
        for bad in ["", "x", "-1", "1e30T", "G", "nan"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn human_units() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(8_000_000_000_000), "7.3 TiB");
        assert_eq!(human(u128::MAX), "3.4e38 B");
    }

    #[test]
    fn products_saturate() {
        assert_eq!(elems(&[]), 1);
        assert_eq!(elems(&[3, 0, usize::MAX]), 0);
        assert_eq!(bytes(&[usize::MAX, usize::MAX, usize::MAX], 8), u128::MAX);
    }

    #[test]
    fn the_message_names_value_need_and_budget() {
        let b = Budget::fixed(1 << 30);
        let e = b.check("--steps 10", 2 << 30).unwrap_err().to_string();
        assert_eq!(
            e,
            "--steps 10 needs about 2.0 GiB of memory, more than the budget of 1.0 GiB"
        );
        assert!(b.check("x", 1 << 30).is_ok());
        let avail = Budget {
            bytes: 1 << 30,
            source: BudgetSource::Available,
        };
        assert!(avail.to_string().contains("MemAvailable"), "{avail}");
    }
}
