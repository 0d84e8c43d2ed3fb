//! Training checkpoints: one safetensors file holding the weights, their EMA and the
//! optimiser's moments, with the configuration as metadata.
//!
//! Tensors are named `net/NAME`, `ema/NAME`, `adam.m/NAME`, `adam.v/NAME`. The metadata
//! holds `format` ([`FORMAT`]), `info` ([`CheckpointInfo`] as JSON, with the
//! [`ModelKind`]), `checksum` (FNV-1a 64 over the names and bytes of every tensor, in
//! name order) and `info_checksum` (FNV-1a 64 over `format` and `info`), so truncation
//! and corruption of the tensors or of the metadata are reported rather than loaded
//! (files written before `info_checksum` existed are read without it; any other
//! metadata key is refused). The safetensors header's shapes and offsets are checked
//! against the file by the safetensors reader, and a model's configuration against the
//! tensors the file holds ([`check_parameters`]) before a model is built from it. Files
//! are written atomically: a crash or Ctrl-C during a save leaves the previous
//! checkpoint intact. [`read_info`] reads the metadata alone, without the tensors.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::net::ModelConfig;
use crate::sde::{DynSde, GaussianKernel, SdeSource};
use crate::train::TrainConfig;

/// The format tag in every checkpoint's metadata.
pub const FORMAT: &str = "sbdm-checkpoint/1";

/// What a checkpoint's model is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ModelKind {
    /// A score model ([`NetModel`](crate::model::net::NetModel)).
    #[default]
    Score,
    /// A time-dependent classifier
    /// ([`ClassifierModel`](crate::model::classifier::ClassifierModel)).
    Classifier {
        /// Its number of classes.
        num_classes: usize,
    },
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelKind::Score => f.write_str("a score model"),
            ModelKind::Classifier { num_classes } => {
                write!(f, "a classifier of {num_classes} classes")
            }
        }
    }
}

/// What a checkpoint was trained as.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// What the model is (files written before kinds existed hold score models).
    #[serde(default)]
    pub kind: ModelKind,
    /// The SDE's name (`VpSde`, …).
    pub sde: String,
    /// [`sde_fingerprint`] of the SDE: identifies its parameters.
    pub sde_fingerprint: Vec<f64>,
    /// The SDE's declaration and parameter values, when it has one (`sde!` types,
    /// [`DynSde`]): [`CheckpointInfo::stored_sde`] derives it again at run time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sde_source: Option<SdeSource>,
    /// The model configuration.
    pub model: ModelConfig,
    /// The training configuration (absent for weights-only files).
    pub train: Option<TrainConfig>,
    /// The training data's name (dataset name or `.npy` path).
    pub data: Option<String>,
    /// Training steps taken.
    pub step: u64,
    /// The optimiser's step count (bias correction).
    pub adam_t: u64,
    /// The sbdm version that wrote the file.
    pub version: String,
}

/// A loaded checkpoint.
pub struct Checkpoint {
    /// The file it was read from (errors name it).
    pub path: PathBuf,
    /// The device its tensors live on.
    pub device: Device,
    /// The metadata.
    pub info: CheckpointInfo,
    /// Every tensor, by its full name.
    pub tensors: HashMap<String, Tensor>,
}

impl Checkpoint {
    /// Passes the EMA weights (if `ema` and present, else the raw ones) to `set`; an
    /// error there is reported as weights that do not fit the stored configuration.
    pub fn set_weights(
        &self,
        ema: bool,
        set: impl FnOnce(&[(String, Tensor)]) -> Result<()>,
    ) -> Result<()> {
        let mut w = self.group(if ema { "ema" } else { "net" });
        if w.is_empty() {
            w = self.group("net");
        }
        set(&w).map_err(|e| {
            format_error(
                &self.path,
                format!("the weights do not fit the stored model configuration: {e}"),
            )
        })
    }

    /// The tensors under `prefix/`, with the prefix removed, sorted by name.
    pub fn group(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let p = format!("{prefix}/");
        let mut v: Vec<_> = self
            .tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(&p).map(|n| (n.to_string(), t.clone())))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// `a(t)` and `b(t)` at the ends and seven interior points of the SDE's time range,
/// after the range itself: equal fingerprints mean the same kernel.
pub fn sde_fingerprint<S: GaussianKernel + ?Sized>(sde: &S) -> Vec<f64> {
    let (t0, t1) = sde.time_range();
    let mut f = vec![t0, t1];
    for i in 0..=8 {
        let t = t0 + (t1 - t0) * f64::from(i) / 8.0;
        f.push(sde.mean_coef(t));
        f.push(sde.std(t));
    }
    f
}

/// Refuses a checkpoint trained for another SDE: one whose kernel differs (time range,
/// `a(t)` and `b(t)`, see [`sde_fingerprint`]). A model depends on its SDE only through
/// the kernel, so an SDE declared under another name with the same kernel is accepted.
pub fn check_sde<S: GaussianKernel + ?Sized>(
    info: &CheckpointInfo,
    sde: &S,
    path: &Path,
) -> Result<()> {
    let f = sde_fingerprint(sde);
    let same = f.len() == info.sde_fingerprint.len()
        && f.iter()
            .zip(&info.sde_fingerprint)
            .all(|(x, y)| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300));
    if same {
        return Ok(());
    }
    let message = if info.sde != sde.name() {
        format!(
            "the checkpoint was trained for the SDE {}, not {}",
            info.sde,
            sde.name()
        )
    } else {
        format!(
            "the checkpoint was trained for {} with other parameters (time range \
             [{}, {}], a/b differ from this SDE's)",
            info.sde,
            info.sde_fingerprint.first().copied().unwrap_or(f64::NAN),
            info.sde_fingerprint.get(1).copied().unwrap_or(f64::NAN)
        )
    };
    Err(format_error(path, message))
}

impl CheckpointInfo {
    /// The SDE the model was trained for, derived again from its stored declaration
    /// (`None` for files without one: SDEs written by hand, tabulated, or files from
    /// before declarations were stored). A declaration that no longer derives, or no
    /// longer gives the kernel the model was trained with, is an error naming the file.
    pub fn stored_sde(&self, path: &Path) -> Result<Option<DynSde>> {
        let Some(source) = &self.sde_source else {
            return Ok(None);
        };
        let sde = DynSde::from_source(source).map_err(|e| {
            format_error(
                path,
                format!(
                    "the stored declaration of the SDE {} does not derive: {e}",
                    self.sde
                ),
            )
        })?;
        check_sde(self, &sde, path).map_err(|_| {
            format_error(
                path,
                format!(
                    "the stored declaration of the SDE {} does not give the kernel the model \
                     was trained with (edited metadata?)",
                    self.sde
                ),
            )
        })?;
        Ok(Some(sde))
    }
}

/// Refuses a checkpoint whose model is not of the `expected` kind.
pub fn check_kind(info: &CheckpointInfo, expected: ModelKind, path: &Path) -> Result<()> {
    if info.kind == expected {
        return Ok(());
    }
    let message = match (expected, info.kind) {
        (ModelKind::Classifier { .. }, ModelKind::Score) => {
            "not a classifier checkpoint (it holds a score model)".to_string()
        }
        (ModelKind::Score, held) => {
            format!("the checkpoint holds {held}, not a score model: its weights do not fit a score model")
        }
        (expected, held) => format!("the checkpoint holds {held}, not {expected}"),
    };
    Err(format_error(path, message))
}

/// Refuses a checkpoint whose model configuration differs from `expected`.
pub fn check_model(info: &CheckpointInfo, expected: &ModelConfig, path: &Path) -> Result<()> {
    if &info.model != expected {
        let show = |m: &ModelConfig| serde_json::to_string(m).unwrap_or_default();
        return Err(format_error(
            path,
            format!(
                "the checkpoint's model configuration differs: checkpoint {} vs requested {}",
                show(&info.model),
                show(expected)
            ),
        ));
    }
    Ok(())
}

fn format_error(path: &Path, message: String) -> Error {
    Error::Format {
        path: path.display().to_string(),
        message,
    }
}

/// The metadata keys a checkpoint may hold.
const META_KEYS: [&str; 4] = ["format", "info", "checksum", "info_checksum"];

/// FNV-1a 64 over the metadata's `format` and `info` (what `info_checksum` holds).
fn info_checksum(format: &str, info: &str) -> u64 {
    checksum([("format", format.as_bytes()), ("info", info.as_bytes())].into_iter())
}

/// Refuses a checkpoint whose `net` (and, when present, `ema`) tensors do not hold
/// exactly `parameters` values: what its model configuration (from the metadata) has,
/// computed without building the model ([`NetConfig::parameter_count`](crate::nn::NetConfig::parameter_count)).
/// So an edited configuration (an absurd width) is refused before anything is allocated.
pub fn check_parameters(ck: &Checkpoint, parameters: u128) -> Result<()> {
    for group in ["net", "ema"] {
        let w = ck.group(group);
        if w.is_empty() && group == "ema" {
            continue;
        }
        let held: u128 = w.iter().map(|(_, t)| t.elem_count() as u128).sum();
        if held != parameters {
            let cfg = serde_json::to_string(&ck.info.model.net).unwrap_or_default();
            return Err(format_error(
                &ck.path,
                format!(
                    "its model configuration {cfg} has {parameters} parameters, but its \
                     `{group}` tensors hold {held} values (edited or corrupt metadata?)"
                ),
            ));
        }
    }
    Ok(())
}

/// FNV-1a 64 over `(name, bytes)` pairs in the given order.
fn checksum<'a>(items: impl Iterator<Item = (&'a str, &'a [u8])>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (name, data) in items {
        eat(name.as_bytes());
        eat(&(data.len() as u64).to_le_bytes());
        eat(data);
    }
    h
}

/// Writes a checkpoint atomically. Every tensor is stored as f32.
pub fn save(
    dest: impl AsRef<Path>,
    info: &CheckpointInfo,
    tensors: &[(String, Tensor)],
) -> Result<()> {
    let mut named: Vec<(String, Tensor)> = Vec::with_capacity(tensors.len());
    for (k, t) in tensors {
        named.push((k.clone(), t.to_dtype(DType::F32)?.contiguous()?));
    }
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let bytes: Vec<Vec<u8>> = named
        .iter()
        .map(|(_, t)| {
            let v = t.flatten_all()?.to_vec1::<f32>()?;
            Ok(v.iter().flat_map(|x| x.to_le_bytes()).collect())
        })
        .collect::<Result<_>>()?;
    let sum = checksum(
        named
            .iter()
            .zip(&bytes)
            .map(|((k, _), b)| (k.as_str(), b.as_slice())),
    );
    let info =
        serde_json::to_string(info).map_err(|e| crate::error::invalid!("checkpoint info: {e}"))?;
    let mut meta = HashMap::new();
    meta.insert(
        "info_checksum".to_string(),
        format!("{:016x}", info_checksum(FORMAT, &info)),
    );
    meta.insert("format".to_string(), FORMAT.to_string());
    meta.insert("info".to_string(), info);
    meta.insert("checksum".to_string(), format!("{sum:016x}"));
    let buf = safetensors::serialize(named.iter().map(|(k, t)| (k.as_str(), t)), Some(meta))
        .map_err(|e| crate::error::invalid!("serialising the checkpoint: {e}"))?;
    crate::io::write_file_atomic(dest, &buf)
}

/// Reads and verifies a checkpoint (format tag, checksum, metadata).
pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Checkpoint> {
    let path = path.as_ref();
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    // The file's bytes, then the tensors' copy of them.
    let len = std::fs::metadata(path).map_err(io)?.len();
    crate::limits::check(
        format_args!("{}: loading a checkpoint of {len} bytes", path.display()),
        u128::from(len).saturating_mul(2),
    )?;
    let buf = std::fs::read(path).map_err(io)?;
    let st = safetensors::SafeTensors::deserialize(&buf).map_err(|e| {
        format_error(
            path,
            format!("not a readable safetensors checkpoint (truncated or corrupt?): {e}"),
        )
    })?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&buf)
        .map_err(|e| format_error(path, format!("unreadable header: {e}")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let info = parse_info(path, &meta)?;
    let mut names: Vec<&str> = st.names().into_iter().collect();
    names.sort_unstable();
    let views: Vec<_> = names
        .iter()
        .map(|n| {
            st.tensor(n)
                .map_err(|e| format_error(path, format!("tensor `{n}`: {e}")))
        })
        .collect::<Result<_>>()?;
    let sum = checksum(names.iter().zip(&views).map(|(n, v)| (*n, v.data())));
    let want = meta.get("checksum").cloned().unwrap_or_default();
    if want != format!("{sum:016x}") {
        return Err(format_error(
            path,
            "checksum mismatch: the file is corrupt".into(),
        ));
    }
    let tensors = candle_core::safetensors::load_buffer(&buf, device)
        .map_err(|e| format_error(path, format!("loading tensors: {e}")))?;
    Ok(Checkpoint {
        path: path.to_path_buf(),
        device: device.clone(),
        info,
        tensors,
    })
}

/// The largest safetensors header read (the format's own limit).
const MAX_HEADER: u64 = 100_000_000;

/// Reads a checkpoint's metadata without its tensors: the header only (format tag and
/// info; the checksum, which covers the tensors, is verified by [`load`]).
pub fn read_info(path: impl AsRef<Path>) -> Result<CheckpointInfo> {
    let path = path.as_ref();
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(|_| {
        format_error(
            path,
            "not a safetensors checkpoint (shorter than its header)".into(),
        )
    })?;
    let len = u64::from_le_bytes(len);
    let file_len = file.metadata().map_err(io)?.len();
    if len > MAX_HEADER || len > file_len.saturating_sub(8) {
        return Err(format_error(
            path,
            format!("not a readable safetensors checkpoint (header of {len} bytes)"),
        ));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(io)?;
    let header: HashMap<String, serde_json::Value> = serde_json::from_slice(&header)
        .map_err(|e| format_error(path, format!("unreadable header: {e}")))?;
    let meta: HashMap<String, String> = header
        .get("__metadata__")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| format_error(path, format!("unreadable metadata: {e}")))?
        .unwrap_or_default();
    parse_info(path, &meta)
}

/// The format check, the metadata's checksum and the info of a checkpoint's metadata.
fn parse_info(path: &Path, meta: &HashMap<String, String>) -> Result<CheckpointInfo> {
    let mut keys: Vec<&String> = meta.keys().collect();
    keys.sort();
    if let Some(k) = keys.iter().find(|k| !META_KEYS.contains(&k.as_str())) {
        return Err(format_error(
            path,
            format!("unexpected metadata key `{k}` (corrupt?)"),
        ));
    }
    match meta.get("format") {
        Some(f) if f == FORMAT => {}
        Some(f) => {
            return Err(format_error(
                path,
                format!("checkpoint format `{f}` is not supported (this sbdm reads {FORMAT})"),
            ))
        }
        None => {
            return Err(format_error(
                path,
                "not an sbdm checkpoint (no `format` in its metadata)".into(),
            ))
        }
    }
    let info = meta.get("info").map(String::as_str).unwrap_or("");
    if let Some(want) = meta.get("info_checksum") {
        if *want != format!("{:016x}", info_checksum(FORMAT, info)) {
            return Err(format_error(
                path,
                "metadata checksum mismatch: the file is corrupt".into(),
            ));
        }
    }
    serde_json::from_str(info)
        .map_err(|e| format_error(path, format!("checkpoint metadata is unreadable: {e}")))
}
