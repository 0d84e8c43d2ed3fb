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
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};
use crate::host::{with_host_values, HostValues};

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
    // The values where they lie (no copy of the batch), written in large chunks.
    with_host_values(x, |values| {
        let HostValues::F32(data) = values else {
            return Err(crate::error::invalid!(
                "{}: .npy output is float32, got a {:?} tensor",
                pending.dest().display(),
                x.dtype()
            ));
        };
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
    })
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

/// The longest `.npy` header read (numpy's writer pads headers to 64 bytes; they hold
/// three short fields): a longer one is refused rather than read.
pub const MAX_NPY_HEADER: usize = 1 << 16;

/// What a `.npy` header says: the element type, the shape (C order) and where the data
/// starts.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyHeader {
    /// The element type.
    pub dtype: DType,
    /// The shape.
    pub shape: Vec<usize>,
    /// The offset of the data in the file: the preamble and the header.
    pub data_offset: usize,
}

impl NpyHeader {
    /// The bytes of data the shape needs (saturating: never overflows).
    pub fn data_bytes(&self) -> u128 {
        crate::limits::bytes(&self.shape, self.dtype.size_in_bytes())
    }

    /// Parses the header at the start of `bytes` (a prefix of the file, at least the
    /// preamble and the header) of a file of `file_len` bytes, and checks that the file
    /// holds exactly the data its shape needs: a truncated file, trailing bytes or a
    /// shape too large for the file are refused here, before anything is allocated.
    pub fn parse(bytes: &[u8], file_len: u64) -> std::result::Result<NpyHeader, String> {
        let magic = b"\x93NUMPY";
        if bytes.len() < magic.len() || &bytes[..magic.len()] != magic {
            return Err("no \\x93NUMPY magic string".into());
        }
        let (major, minor) = match bytes.get(6..8) {
            Some(v) => (v[0], v[1]),
            None => return Err("truncated .npy preamble".into()),
        };
        let (len_bytes, utf8) = match (major, minor) {
            (1, 0) => (2, false),
            (2, 0) => (4, false),
            (3, 0) => (4, true),
            _ => {
                return Err(format!(
                    ".npy format version {major}.{minor} is not supported (1.0, 2.0 and 3.0 are)"
                ))
            }
        };
        let start = 8 + len_bytes;
        let len = match bytes.get(8..start) {
            Some(b) => b
                .iter()
                .rev()
                .fold(0usize, |n, &v| (n << 8) | usize::from(v)),
            None => return Err("truncated .npy preamble".into()),
        };
        if len > MAX_NPY_HEADER {
            return Err(format!(
                ".npy header of {len} bytes, more than the {MAX_NPY_HEADER} this reader accepts (corrupt?)"
            ));
        }
        let end = start + len;
        let Some(text) = bytes.get(start..end) else {
            return Err(format!(
                "truncated .npy header: {len} bytes announced, the file ends before"
            ));
        };
        if !utf8 && !text.is_ascii() {
            return Err(".npy header is not ASCII text (corrupt?)".into());
        }
        let text = std::str::from_utf8(text).map_err(|_| ".npy header is not UTF-8 text")?;
        let (dtype, fortran, shape) = parse_npy_dict(text)?;
        if fortran {
            return Err(
                "Fortran-order arrays are not supported (numpy: np.ascontiguousarray(x))".into(),
            );
        }
        // Tensors compute products of the dimensions in any order: with a zero among
        // them, the others must still multiply without overflow.
        let nonzero = shape
            .iter()
            .filter(|d| **d != 0)
            .try_fold(1usize, |n, d| n.checked_mul(*d));
        if nonzero.is_none_or(|n| n > isize::MAX as usize) {
            return Err(format!("its shape {shape:?} is too large to index"));
        }
        let header = NpyHeader {
            dtype,
            shape,
            data_offset: end,
        };
        let need = header.data_bytes();
        let held = u128::from(file_len).saturating_sub(end as u128);
        if need != held {
            let what = if need > held {
                "truncated or corrupt"
            } else {
                "trailing bytes: corrupt"
            };
            return Err(format!(
                "its shape {:?} of {} needs {need} bytes of data, the file holds {held} after its header ({what})",
                header.shape,
                numpy_dtype(dtype)
            ));
        }
        Ok(header)
    }
}

/// numpy's name of a dtype, for messages (`.npy` readers, datasets).
pub(crate) fn numpy_dtype(dtype: DType) -> &'static str {
    match dtype {
        DType::U8 => "uint8",
        DType::U32 => "uint32",
        DType::I16 => "int16",
        DType::I32 => "int32",
        DType::I64 => "int64",
        DType::BF16 => "bfloat16",
        DType::F16 => "float16",
        DType::F32 => "float32",
        DType::F64 => "float64",
        _ => "an 8/6/4-bit float",
    }
}

/// A cursor over a `.npy` header dictionary.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Skips white space, then eats `c` if it is next.
    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8, what: &str) -> std::result::Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                ".npy header: expected `{}` {what} at byte {}",
                c as char, self.i
            ))
        }
    }

    /// A quoted string without escapes.
    fn string(&mut self) -> std::result::Result<String, String> {
        self.skip_ws();
        let q = match self.s.get(self.i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(format!(
                    ".npy header: expected a quoted name at byte {}",
                    self.i
                ))
            }
        };
        let from = self.i + 1;
        let len = self.s[from..]
            .iter()
            .position(|&c| c == q)
            .ok_or(".npy header: an unterminated string")?;
        let text = &self.s[from..from + len];
        if text.iter().any(|c| c.is_ascii_control() || *c == b'\\') {
            return Err(".npy header: a control character in a string".into());
        }
        self.i = from + len + 1;
        Ok(String::from_utf8_lossy(text).into_owned())
    }

    /// A bare word (`True`, `False`).
    fn word(&mut self) -> &[u8] {
        self.skip_ws();
        let from = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_alphabetic) {
            self.i += 1;
        }
        &self.s[from..self.i]
    }

    /// A shape: a tuple of whole numbers, `()`, `(3,)`, `(3, 2)`.
    fn shape(&mut self) -> std::result::Result<Vec<usize>, String> {
        self.expect(b'(', "opening the shape")?;
        let mut dims = Vec::new();
        loop {
            if self.eat(b')') {
                return Ok(dims);
            }
            self.skip_ws();
            let from = self.i;
            while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[from..self.i]).unwrap_or("");
            if digits.is_empty() {
                return Err(format!(
                    ".npy header: expected a dimension (a whole number) at byte {from}"
                ));
            }
            let d = digits
                .parse::<usize>()
                .map_err(|_| format!(".npy header: the dimension {digits} is too large"))?;
            if dims.len() == 32 {
                return Err(".npy header: more than 32 dimensions".into());
            }
            dims.push(d);
            if !self.eat(b',') {
                self.expect(b')', "closing the shape")?;
                return Ok(dims);
            }
        }
    }
}

/// The dtype, Fortran order and shape of a header dictionary such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }`: exactly those three
/// keys, then only white space.
fn parse_npy_dict(text: &str) -> std::result::Result<(DType, bool, Vec<usize>), String> {
    let mut c = Cursor {
        s: text.as_bytes(),
        i: 0,
    };
    c.expect(b'{', "opening the header dictionary")?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    while !c.eat(b'}') {
        let key = c.string()?;
        c.expect(b':', "after a key")?;
        let dup = match key.as_str() {
            "descr" => descr.replace(c.string()?).is_some(),
            "fortran_order" => {
                let v = match c.word() {
                    b"True" => true,
                    b"False" => false,
                    w => {
                        return Err(format!(
                            ".npy header: fortran_order is `{}`, not True or False",
                            String::from_utf8_lossy(w)
                        ))
                    }
                };
                fortran.replace(v).is_some()
            }
            "shape" => shape.replace(c.shape()?).is_some(),
            other => return Err(format!(".npy header: unknown key `{other}`")),
        };
        if dup {
            return Err(format!(".npy header: `{key}` is given twice"));
        }
        if !c.eat(b',') {
            c.expect(b'}', "closing the header dictionary")?;
            break;
        }
    }
    c.skip_ws();
    if c.i != text.len() {
        return Err(format!(
            ".npy header: unexpected text after the dictionary at byte {}",
            c.i
        ));
    }
    let missing = |k: &str| format!(".npy header: no `{k}`");
    let descr = descr.ok_or_else(|| missing("descr"))?;
    let fortran = fortran.ok_or_else(|| missing("fortran_order"))?;
    let shape = shape.ok_or_else(|| missing("shape"))?;
    Ok((npy_dtype(&descr)?, fortran, shape))
}

/// The dtype of a numpy `descr` (little-endian or byte-order free).
fn npy_dtype(descr: &str) -> std::result::Result<DType, String> {
    let (order, code) = match descr.as_bytes().first() {
        Some(b'<' | b'|' | b'=' | b'>') => descr.split_at(1),
        _ => ("", descr),
    };
    let dtype = match code {
        "e" | "f2" => DType::F16,
        "f" | "f4" => DType::F32,
        "d" | "f8" => DType::F64,
        "h" | "i2" => DType::I16,
        "i" | "i4" => DType::I32,
        "q" | "i8" => DType::I64,
        "B" | "u1" | "?" | "b1" => DType::U8,
        "I" | "u4" => DType::U32,
        _ => {
            return Err(format!(
            "dtype `{descr}` is not supported (float16/32/64, int16/32/64, uint8/32 and bool are)"
        ))
        }
    };
    if order == ">" && dtype.size_in_bytes() > 1 {
        return Err(format!(
            "dtype `{descr}` is big-endian; save it little-endian (numpy: x.astype('<{code}'))"
        ));
    }
    Ok(dtype)
}

/// Decodes a whole `.npy` file held in memory (checked as [`read_npy_any`] checks a
/// file); an error is the problem in one line.
pub fn npy_from_bytes(bytes: &[u8]) -> std::result::Result<Tensor, String> {
    let h = NpyHeader::parse(bytes, bytes.len() as u64)?;
    Tensor::from_raw_buffer(&bytes[h.data_offset..], h.dtype, &h.shape, &Device::Cpu)
        .map_err(first_line)
}

/// Reads a `.npy` array of any numeric dtype and shape (C order), e.g. a mask. The
/// header is checked against the file before anything else is read: a shape the file
/// does not hold (truncated, trailing bytes, a corrupt header) is refused, and so is an
/// array that does not fit in the memory budget ([`crate::limits`]).
pub fn read_npy_any(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let format = |message: String| Error::Format {
        path: path.display().to_string(),
        message,
    };
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if meta.is_dir() {
        return Err(format("is a directory, not a .npy file".into()));
    }
    let file_len = meta.len();
    let mut prefix = Vec::new();
    let want = (12 + MAX_NPY_HEADER) as u64;
    (&mut file)
        .take(want)
        .read_to_end(&mut prefix)
        .map_err(|e| io_error(path, e))?;
    let header = NpyHeader::parse(&prefix, file_len)
        .map_err(|e| format(format!("not a readable .npy array: {e}")))?;
    // The file's bytes, then the tensor's copy of them.
    let need = header.data_bytes().saturating_mul(2);
    crate::limits::check(
        format_args!(
            "its {} array of shape {:?}",
            numpy_dtype(header.dtype),
            header.shape
        ),
        need,
    )
    .map_err(|e| format(e.to_string()))?;
    let mut data = prefix.split_off(header.data_offset.min(prefix.len()));
    drop(prefix);
    let n = header.data_bytes() as usize;
    data.truncate(n);
    if data.len() < n {
        let have = data.len();
        data.resize(n, 0);
        file.read_exact(&mut data[have..])
            .map_err(|e| format(format!("reading its data: {e} (truncated?)")))?;
    }
    Tensor::from_raw_buffer(&data, header.dtype, &header.shape, &Device::Cpu)
        .map_err(|e| format(format!("not a readable .npy array: {}", first_line(e))))
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
