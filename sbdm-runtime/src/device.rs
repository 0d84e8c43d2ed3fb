//! The device a command runs on, by name: `cpu`, `cuda` (the first GPU) or `cuda:N`.
//!
//! CUDA needs a build with the `cuda` feature (`scripts/cuda-toolkit.sh`, then
//! `cargo build --release --features cuda`) and, at run time, a GPU with its driver; each
//! missing piece is a one-line error naming it, and the CPU path never depends on it.
//!
//! ```
//! use sbdm_runtime::device;
//! assert!(device::by_name("cpu")?.is_cpu());
//! assert!(device::by_name("tpu").unwrap_err().to_string().contains("valid: cpu, cuda, cuda:N"));
//! # Ok::<(), sbdm_runtime::error::Error>(())
//! ```

use candle_core::Device;

use crate::error::{invalid, Result};

/// Whether this build has the CUDA backend (the `cuda` feature).
pub const HAS_CUDA: bool = cfg!(feature = "cuda");

/// The device named `name`: `cpu`, `cuda` (ordinal 0) or `cuda:N`.
///
/// # Errors
/// An unknown name; `cuda` in a build without the `cuda` feature; a GPU that cannot be
/// opened (no driver, no such ordinal): each in one line.
pub fn by_name(name: &str) -> Result<Device> {
    let lower = name.trim().to_ascii_lowercase();
    let ordinal = match lower.as_str() {
        "cpu" => return Ok(Device::Cpu),
        "cuda" => 0,
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => {
                return Err(invalid!(
                    "unknown device `{name}`; valid: cpu, cuda, cuda:N"
                ))
            }
        },
    };
    if !HAS_CUDA {
        return Err(invalid!(
            "device `{name}`: this sbdm was built without CUDA; build it with \
             `cargo build --release --features cuda` (scripts/cuda-toolkit.sh assembles the \
             toolkit; see the README)"
        ));
    }
    Device::new_cuda(ordinal).map_err(|e| {
        let why = e.to_string();
        let why = why.lines().next().unwrap_or("unknown error");
        invalid!("device `{name}`: no usable CUDA device ({why})")
    })
}
