//! Files in and out: atomic writes (a temporary file beside the destination, renamed
//! over it once complete, so a reader never sees half a file and a failed run leaves
//! nothing behind) and f32 `.npy` arrays for NumPy interop.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! # fn main() -> sbdm_runtime::error::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("x.npy");
//! let x = Tensor::new(&[[1f32, 2.0], [3.0, 4.0], [5.0, 6.0]], &Device::Cpu)?; // [3, 2]
//! sbdm_runtime::io::write_npy(&path, &x)?;
//! let back = sbdm_runtime::io::read_npy(&path, 2)?;                          // f32, rank 2
//! assert_eq!(back.to_vec2::<f32>()?, x.to_vec2::<f32>()?);
//! # Ok(()) }
//! ```

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};

/// A file being written: the content goes to a temporary path in the destination's
/// directory (with the destination's extension, for writers that look at it), and
/// [`commit`](PendingFile::commit) renames it over the destination. Dropped without a
/// commit, the temporary file is removed.
#[derive(Debug)]
pub struct PendingFile {
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn io_error(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The first line of a message (candle errors carry a backtrace when `RUST_BACKTRACE` is set).
fn first_line(e: impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or("").to_string()
}

impl PendingFile {
    /// Prepares to write `dest`. Fails if its directory does not exist or is not writable.
    pub fn new(dest: impl AsRef<Path>) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        let name = dest
            .file_name()
            .ok_or_else(|| crate::error::invalid!("{}: not a file name", dest.display()))?
            .to_string_lossy()
            .into_owned();
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(io_error(
                &dest,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("directory {} does not exist", dir.display()),
                ),
            ));
        }
        if dest.is_dir() {
            return Err(io_error(
                &dest,
                std::io::Error::new(std::io::ErrorKind::IsADirectory, "is a directory"),
            ));
        }
        let ext = dest
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}-{n}.tmp{ext}", std::process::id()));
        // Create it now: this checks the directory is writable before any work is done.
        File::create_new(&tmp).map_err(|e| io_error(&dest, e))?;
        Ok(PendingFile {
            tmp,
            dest,
            committed: false,
        })
    }

    /// The temporary path to write to.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// The destination.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// Flushes the temporary file to disk and renames it over the destination.
    pub fn commit(mut self) -> Result<()> {
        File::open(&self.tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_error(&self.dest, e))?;
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| io_error(&self.dest, e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `dest` atomically: `write` fills a temporary path, which is then renamed
/// over `dest`. On any error nothing is left behind and `dest` is untouched.
pub fn write_atomic(dest: impl AsRef<Path>, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let pending = PendingFile::new(dest)?;
    write(pending.path())?;
    pending.commit()
}

/// Writes `contents` to `dest` atomically (a JSON report, a CSV log, a checkpoint); an
/// error names `dest`.
pub fn write_file_atomic(dest: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> Result<()> {
    let dest = dest.as_ref();
    write_atomic(dest, |tmp| {
        std::fs::write(tmp, contents).map_err(|e| io_error(dest, e))
    })
}

/// Writes the contents of a [`PendingFile`] as a float32 `.npy` array.
pub fn write_npy_pending(pending: &PendingFile, x: &Tensor) -> Result<()> {
    if x.dtype() != DType::F32 {
        return Err(crate::error::invalid!(
            "{}: .npy output is float32, got a {:?} tensor",
            pending.dest().display(),
            x.dtype()
        ));
    }
    let data: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let write = || -> std::io::Result<()> {
        let mut file = std::io::BufWriter::new(File::create(pending.path())?);
        file.write_all(&npy_f32_header(x.dims()))?;
        for chunk in data.chunks(1 << 14) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
            file.write_all(&bytes)?;
        }
        file.flush()
    };
    write().map_err(|e| io_error(pending.dest(), e))
}

/// The header of a float32 array in the `.npy` format (version 1.0, C order,
/// little-endian): the magic string, the header length, then the header dictionary
/// padded with spaces to a multiple of 64 bytes. The data follows it as raw bytes,
/// written in large chunks (candle's `write_npy` writes value by value: 3 system calls
/// per 10 values here).
fn npy_f32_header(dims: &[usize]) -> Vec<u8> {
    let shape = match dims {
        [n] => format!("({n},)"),
        d => format!(
            "({})",
            d.iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // magic (6) + version (2) + header length (2) + header + '\n' ≡ 0 (mod 64).
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes
}

/// Writes a float32 tensor as a `.npy` array, atomically.
pub fn write_npy(dest: impl AsRef<Path>, x: &Tensor) -> Result<()> {
    let pending = PendingFile::new(dest)?;
    write_npy_pending(&pending, x)?;
    pending.commit()
}

/// Reads a `.npy` array of any numeric dtype and shape (C order), e.g. a mask.
pub fn read_npy_any(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    File::open(path).map_err(|e| io_error(path, e))?;
    Tensor::read_npy(path).map_err(|e| Error::Format {
        path: path.display().to_string(),
        message: format!("not a readable .npy array: {}", first_line(e)),
    })
}

/// Reads a one-dimensional `.npy` array (`[N]`, or `[N, 1]`) of any numeric dtype as f64
/// values, e.g. a list of times or labels. Non-finite values are refused.
pub fn read_npy_vector(path: impl AsRef<Path>) -> Result<Vec<f64>> {
    let path = path.as_ref();
    let x = read_npy_any(path)?;
    let n = match x.dims() {
        [n] | [n, 1] => *n,
        d => {
            return Err(Error::Format {
                path: path.display().to_string(),
                message: format!("shape {d:?}, expected a vector [N] or [N, 1]"),
            })
        }
    };
    let v: Vec<f64> = x.reshape(n)?.to_dtype(DType::F64)?.to_vec1()?;
    if let Some(i) = v.iter().position(|v| !v.is_finite()) {
        return Err(Error::Format {
            path: path.display().to_string(),
            message: format!("entry {i} is {}", v[i]),
        });
    }
    Ok(v)
}

/// Reads class labels: a `.npy` vector (`[N]` or `[N, 1]`) of integers (any integer dtype,
/// or floats holding whole numbers), each in `0..=u32::MAX`.
pub fn read_npy_labels(path: impl AsRef<Path>) -> Result<Vec<u32>> {
    let path = path.as_ref();
    let v = read_npy_vector(path)?;
    v.iter()
        .enumerate()
        .map(|(i, &y)| {
            if y.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&y) {
                Ok(y as u32)
            } else {
                Err(Error::Format {
                    path: path.display().to_string(),
                    message: format!("label {i} is {y}, not a class index (a whole number >= 0)"),
                })
            }
        })
        .collect()
}

/// Reads a float32 `.npy` array of the given rank (C order), e.g. `[N, D]` for rank 2.
/// Any other dtype, a Fortran-order or truncated file, or another rank is an error
/// naming the file.
pub fn read_npy(path: impl AsRef<Path>, rank: usize) -> Result<Tensor> {
    let path = path.as_ref();
    let format = |message: String| Error::Format {
        path: path.display().to_string(),
        message,
    };
    let x = read_npy_any(path)?;
    if x.dtype() != DType::F32 {
        return Err(format(format!(
            "dtype {:?}, expected float32 (numpy: x.astype(np.float32))",
            x.dtype()
        )));
    }
    if x.rank() != rank {
        return Err(format(format!(
            "shape {:?} has rank {}, expected rank {rank}",
            x.dims(),
            x.rank()
        )));
    }
    Ok(x)
}
