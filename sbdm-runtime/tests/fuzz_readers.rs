//! Fuzzing the library's readers of user input: `.npy` arrays, checkpoints (tensors and
//! metadata), mixture JSON and `.sde` declarations. No input may panic, abort or hang,
//! and what is accepted must be what the file holds.
//!
//! Each harness is seeded (the same inputs every run) and runs a few hundred cases in
//! CI; `SBDM_FUZZ_CASES=N` runs `N` per harness (the long run of docs/reliability.md:
//! `SBDM_FUZZ_CASES=100000 cargo test --release -p sbdm-runtime --test fuzz_readers --
//! --nocapture`) and `SBDM_FUZZ_SEED=S` draws other inputs. Each harness prints how
//! many inputs it accepted and refused, by kind. Beside them, every reader is run on a
//! small valid file cut at every byte and with every single bit flipped.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use sbdm_runtime::data::Dataset;
use sbdm_runtime::io::{self, NpyHeader};
use sbdm_runtime::model::classifier::ClassifierModel;
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::model::net::{ModelConfig, NetModel};
use sbdm_runtime::model::Trainable;
use sbdm_runtime::nn::{ClassifierConfig, EmbedConfig, MlpConfig, NetConfig};
use sbdm_runtime::sde::builtin::VpSde;
use sbdm_runtime::sde::{named, DynSde, GaussianKernel, Sde};
use sbdm_runtime::train::checkpoint::{self, CheckpointInfo, ModelKind};
use sbdm_runtime::train::{load_classifier, model_from_checkpoint};

// ---------------------------------------------------------------------------------------
// The harness: seeded runs, a watchdog against hangs, a tally of outcomes.

/// Cases per harness: `ci`, or `SBDM_FUZZ_CASES`.
fn cases(ci: u32) -> u32 {
    std::env::var("SBDM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ci)
}

/// The harness `name`'s seed, changed by `SBDM_FUZZ_SEED`.
fn seed(name: &str) -> [u8; 32] {
    let extra: u64 = std::env::var("SBDM_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ extra;
    let mut out = [0u8; 32];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        for b in name.bytes().chain([i as u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        chunk.copy_from_slice(&h.to_le_bytes());
    }
    out
}

/// Seconds one input may take before it counts as a hang (debug builds are slow).
const HANG_S: u64 = 60;

/// What a reader did with an input.
enum Outcome {
    Accepted,
    Refused(&'static str),
}

/// Aborts the process, naming the input, when one input takes longer than [`HANG_S`]:
/// a hang is a failure, not a test that never ends.
struct Watchdog {
    current: Arc<Mutex<(Instant, String)>>,
    done: Arc<AtomicBool>,
}

impl Watchdog {
    fn start(name: &'static str) -> Watchdog {
        let current = Arc::new(Mutex::new((Instant::now(), String::new())));
        let done = Arc::new(AtomicBool::new(false));
        let (c, d) = (current.clone(), done.clone());
        std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                let (since, input) = c.lock().unwrap().clone();
                if since.elapsed() > Duration::from_secs(HANG_S) && !d.load(Ordering::Relaxed) {
                    eprintln!("{name}: an input hangs (> {HANG_S} s): {input}");
                    std::process::abort();
                }
            }
        });
        Watchdog { current, done }
    }

    fn begin(&self, input: String) {
        *self.current.lock().unwrap() = (Instant::now(), input);
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
    }
}

/// Runs `check` on `cases(ci)` inputs of `strategy` (seeded by `name`): a panic or an
/// `Err` (a broken contract) fails the test with the shrunk input. Prints the tally.
fn fuzz<S: Strategy>(
    name: &'static str,
    ci: u32,
    strategy: S,
    check: impl Fn(&S::Value) -> Result<Outcome, String>,
) where
    S::Value: Debug,
{
    let n = cases(ci);
    let config = Config {
        cases: n,
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed(name)),
    );
    let tally: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());
    let dog = Watchdog::start(name);
    let start = Instant::now();
    let result = runner.run(&strategy, |v| {
        let mut shown = format!("{v:?}");
        shown.truncate(4000);
        dog.begin(shown);
        let kind = match check(&v).map_err(TestCaseError::fail)? {
            Outcome::Accepted => "accepted",
            Outcome::Refused(kind) => kind,
        };
        *tally.lock().unwrap().entry(kind).or_default() += 1;
        Ok(())
    });
    drop(dog);
    let tally = tally.into_inner().unwrap();
    let parts: Vec<String> = tally.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "fuzz {name}: {n} inputs in {:.1} s: {}",
        start.elapsed().as_secs_f64(),
        parts.join(", ")
    );
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
}

/// A one-line error message (never a multi-line report or a backtrace).
fn one_line(msg: &str) -> Result<(), String> {
    if msg.lines().count() != 1 || msg.contains("panicked") {
        return Err(format!("not a one-line error: {msg:?}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Byte mutations of valid files.

#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    Splice(usize, usize, &'static str),
    Duplicate(usize, usize),
}

/// Text that reaches deep into parsers: huge, negative and odd numbers, brackets.
const INTERESTING: [&str; 24] = [
    "18446744073709551615",
    "18446744073709551616",
    "1000000000000",
    "99999999999999999999999999",
    "-1",
    "0",
    "1e308",
    "1e-320",
    "NaN",
    "inf",
    "(",
    ")",
    ",",
    "'",
    "\"",
    "}",
    "{",
    "[",
    "]",
    ":",
    "\0",
    "\u{feff}",
    "True",
    "null",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => any::<usize>().prop_map(Mutation::Flip),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), 0usize..8, prop::sample::select(&INTERESTING[..]))
            .prop_map(|(i, n, s)| Mutation::Splice(i, n, s)),
        1 => (any::<usize>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
    ]
}

fn mutations() -> impl Strategy<Value = Vec<Mutation>> {
    prop::collection::vec(mutation(), 1..6)
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let len = bytes.len();
    let at = |i: usize| if len == 0 { 0 } else { i % (len + 1) };
    match m {
        Mutation::Flip(i) if len > 0 => bytes[(i / 8) % len] ^= 1 << (i % 8),
        Mutation::Set(i, b) if len > 0 => bytes[i % len] = *b,
        Mutation::Insert(i, b) => {
            let p = at(*i);
            bytes.splice(p..p, b.iter().copied());
        }
        Mutation::Delete(i, n) => {
            let p = at(*i);
            let e = (p + n).min(len);
            bytes.drain(p..e);
        }
        Mutation::Truncate(i) => bytes.truncate(at(*i)),
        Mutation::Splice(i, n, s) => {
            let p = at(*i);
            let e = (p + n).min(len);
            bytes.splice(p..e, s.bytes());
        }
        Mutation::Duplicate(i, n) => {
            let p = at(*i);
            let e = (p + n).min(len);
            let copy = bytes[p..e].to_vec();
            bytes.splice(e..e, copy);
        }
        _ => {}
    }
}

fn mutated(base: &[u8], ms: &[Mutation]) -> Vec<u8> {
    let mut b = base.to_vec();
    for m in ms {
        apply(&mut b, m);
    }
    b
}

// ---------------------------------------------------------------------------------------
// .npy

/// Small valid `.npy` files in several dtypes and shapes (numpy's own layout).
fn npy_bases() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let dev = Device::Cpu;
    let tensors = [
        Tensor::new(&[[1f32, -2.5], [3.0, 4.25], [0.5, 6.0]], &dev).unwrap(),
        Tensor::new(&[1u8, 0, 1, 1, 0], &dev).unwrap(),
        Tensor::new(&[[[1f64, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]], &dev).unwrap(),
        Tensor::new(&[3i64, 1, 4], &dev).unwrap(),
        Tensor::zeros((0, 2), DType::F32, &dev).unwrap(),
    ];
    tensors
        .iter()
        .map(|t| {
            let p = dir.path().join("x.npy");
            t.write_npy(&p).unwrap();
            std::fs::read(&p).unwrap()
        })
        .collect()
}

/// A `.npy` file put together from parts, valid or not.
#[derive(Clone, Debug)]
struct NpyParts {
    version: (u8, u8),
    descr: &'static str,
    fortran: &'static str,
    shape: Vec<&'static str>,
    trailing_comma: bool,
    extra: Option<&'static str>,
    /// Data bytes relative to what the shape needs (capped at 4 KiB).
    data_delta: i64,
    /// Override the header length field.
    header_len: Option<u32>,
}

const DESCRS: [&str; 14] = [
    "<f4", "<f8", "<f2", "|u1", "|b1", "<i8", "<i4", "<i2", "<u4", ">f4", "<c8", "<U10", "O", "",
];
const DIMS: [&str; 12] = [
    "0",
    "1",
    "2",
    "3",
    "7",
    "64",
    "1000000000000",
    "4294967296",
    "18446744073709551615",
    "99999999999999999999",
    "-2",
    "2.5",
];

fn npy_parts() -> impl Strategy<Value = NpyParts> {
    (
        // Mostly valid parts, so that most inputs reach the size checks and the data.
        prop_oneof![
            9 => prop::sample::select(vec![(1u8, 0u8), (2, 0), (3, 0)]),
            1 => prop::sample::select(vec![(1, 1), (4, 0), (0, 0)]),
        ],
        prop_oneof![
            4 => prop::sample::select(&DESCRS[..9]),
            1 => prop::sample::select(&DESCRS[9..]),
        ],
        prop_oneof![
            9 => Just("False"),
            1 => prop::sample::select(vec!["True", "0", "false"]),
        ],
        prop::collection::vec(
            prop_oneof![
                5 => prop::sample::select(&DIMS[..6]),
                1 => prop::sample::select(&DIMS[6..]),
            ],
            0..5,
        ),
        any::<bool>(),
        prop::option::weighted(
            0.05,
            prop::sample::select(vec!["'extra': 1", "'shape': (2,)", "'descr': '<f4'"]),
        ),
        prop_oneof![8 => Just(0i64), 1 => -9i64..9, 1 => any::<i64>()],
        prop::option::weighted(0.05, any::<u32>()),
    )
        .prop_map(
            |(version, descr, fortran, shape, trailing_comma, extra, data_delta, header_len)| {
                NpyParts {
                    version,
                    descr,
                    fortran,
                    shape,
                    trailing_comma,
                    extra,
                    data_delta,
                    header_len,
                }
            },
        )
}

impl NpyParts {
    fn bytes(&self) -> Vec<u8> {
        let mut shape = self.shape.join(", ");
        if self.shape.len() == 1 || (self.trailing_comma && !self.shape.is_empty()) {
            shape.push(',');
        }
        let extra = self.extra.map(|e| format!("{e}, ")).unwrap_or_default();
        let mut header = format!(
            "{{'descr': '{}', 'fortran_order': {}, 'shape': ({shape}), {extra}}}",
            self.descr, self.fortran
        );
        let len_bytes = if self.version.0 == 1 { 2 } else { 4 };
        let pad = (64 - (8 + len_bytes + header.len() + 1) % 64) % 64;
        header.push_str(&" ".repeat(pad));
        header.push('\n');
        let mut out = b"\x93NUMPY".to_vec();
        out.extend([self.version.0, self.version.1]);
        let len = self.header_len.unwrap_or(header.len() as u32);
        out.extend(&len.to_le_bytes()[..len_bytes]);
        out.extend(header.as_bytes());
        let size: u128 = match self.descr {
            "<f8" | "<i8" | "<c8" => 8,
            "<f4" | "<i4" | "<u4" | ">f4" => 4,
            "<f2" | "<i2" => 2,
            _ => 1,
        };
        let need = self
            .shape
            .iter()
            .map(|d| d.parse::<u128>().unwrap_or(1))
            .fold(size, |a, d| a.saturating_mul(d))
            .min(4096);
        let n = (need as i128 + self.data_delta as i128).clamp(0, 8192) as usize;
        out.extend((0..n).map(|i| (i * 37 % 251) as u8));
        out
    }
}

fn npy_kind(msg: &str) -> &'static str {
    if msg.contains("magic") {
        "refused: not .npy (magic)"
    } else if msg.contains("version") {
        "refused: version"
    } else if msg.contains("dtype") {
        "refused: dtype"
    } else if msg.contains("Fortran") {
        "refused: Fortran order"
    } else if msg.contains("too large to index") {
        "refused: shape too large to index"
    } else if msg.contains("bytes of data") {
        "refused: shape vs file size (truncated, trailing, huge)"
    } else if msg.contains("of memory") {
        "refused: memory budget"
    } else {
        "refused: header syntax"
    }
}

/// Reads `bytes` as a `.npy` file both from memory and from `path`: the two agree, an
/// accepted array holds exactly the file's data, an error is one line.
fn check_npy(bytes: &[u8], path: &Path) -> Result<Outcome, String> {
    std::fs::write(path, bytes).map_err(|e| e.to_string())?;
    let mem = io::npy_from_bytes(bytes);
    let file = io::read_npy_any(path);
    match (mem, file) {
        (Ok(a), Ok(b)) => {
            let h = NpyHeader::parse(bytes, bytes.len() as u64)?;
            if a.dims() != h.shape.as_slice() || b.dims() != a.dims() || a.dtype() != b.dtype() {
                return Err(format!("shapes differ: {:?} {:?}", a.dims(), b.dims()));
            }
            let held = (bytes.len() - h.data_offset) as u128;
            if h.data_bytes() != held {
                return Err(format!("accepted {} bytes of {held}", h.data_bytes()));
            }
            if a.elem_count() > 0 {
                let eq = a
                    .flatten_all()
                    .and_then(|x| x.to_dtype(DType::F64))
                    .and_then(|x| x.to_vec1::<f64>())
                    .map_err(|e| e.to_string())?;
                let eq2 = b
                    .flatten_all()
                    .and_then(|x| x.to_dtype(DType::F64))
                    .and_then(|x| x.to_vec1::<f64>())
                    .map_err(|e| e.to_string())?;
                if eq.iter().zip(&eq2).any(|(x, y)| x.to_bits() != y.to_bits()) {
                    return Err("memory and file readers differ".into());
                }
            }
            Ok(Outcome::Accepted)
        }
        (Err(m), Err(f)) => {
            let f = f.to_string();
            one_line(&f)?;
            one_line(&m)?;
            if !f.contains(&path.display().to_string()) {
                return Err(format!("the error does not name the file: {f}"));
            }
            Ok(Outcome::Refused(npy_kind(&f)))
        }
        (m, f) => Err(format!(
            "memory and file readers disagree: {:?} vs {:?}",
            m.map(|t| t.dims().to_vec()),
            f.map(|t| t.dims().to_vec())
        )),
    }
}

#[test]
fn fuzz_npy_reader() {
    let bases = npy_bases();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.npy");
    let input = prop_oneof![
        1 => npy_parts().prop_map(|p| p.bytes()),
        1 => (0..bases.len(), mutations()).prop_map(move |(i, ms)| (i, ms)).prop_map({
            let bases = bases.clone();
            move |(i, ms)| mutated(&bases[i], &ms)
        }),
        1 => (npy_parts(), mutations()).prop_map(|(p, ms)| mutated(&p.bytes(), &ms)),
    ];
    fuzz("npy", 256, input, |bytes| check_npy(bytes, &path));
}

/// Every prefix of a valid file is refused; the whole file reads back.
#[test]
fn npy_cut_at_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.npy");
    for base in npy_bases() {
        for cut in 0..base.len() {
            std::fs::write(&path, &base[..cut]).unwrap();
            let e = io::read_npy_any(&path)
                .err()
                .unwrap_or_else(|| panic!("a cut at byte {cut} of {} was read", base.len()));
            one_line(&e.to_string()).unwrap();
            assert!(io::npy_from_bytes(&base[..cut]).is_err());
        }
        std::fs::write(&path, &base).unwrap();
        io::read_npy_any(&path).unwrap();
    }
}

/// Every single-bit flip of a valid float32 file: a flip in the header is refused or
/// leaves the same array (`<` and `|` are one bit apart and mean the same); a flip in
/// the data changes one value, and the finite-checked reader (training data) refuses it
/// when that value is no longer finite. The format has no checksum: a data flip to
/// another finite number reads as that number.
#[test]
fn npy_single_bit_flips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flip.npy");
    let base = &npy_bases()[0];
    let original = io::npy_from_bytes(base).unwrap();
    let h = NpyHeader::parse(base, base.len() as u64).unwrap();
    let (mut refused, mut same, mut data_changed, mut non_finite) = (0, 0, 0, 0);
    for bit in 0..base.len() * 8 {
        let mut b = base.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        std::fs::write(&path, &b).unwrap();
        let read = io::read_npy_any(&path);
        let in_header = bit / 8 < h.data_offset;
        match read {
            Err(e) => {
                one_line(&e.to_string()).unwrap();
                assert!(in_header, "a data flip was refused: {e}");
                refused += 1;
            }
            Ok(t) => {
                assert_eq!(t.dims(), original.dims(), "bit {bit}");
                assert_eq!(t.dtype(), DType::F32, "bit {bit}");
                if in_header {
                    let same_values =
                        t.to_vec2::<f32>().unwrap() == original.to_vec2::<f32>().unwrap();
                    assert!(same_values, "a header flip (bit {bit}) changed the values");
                    same += 1;
                } else {
                    data_changed += 1;
                    let finite = t
                        .flatten_all()
                        .unwrap()
                        .to_vec1::<f32>()
                        .unwrap()
                        .iter()
                        .all(|v| v.is_finite());
                    match Dataset::from_npy(&path, &Device::Cpu) {
                        Ok(_) => assert!(finite, "bit {bit}: a non-finite value was accepted"),
                        Err(e) => {
                            assert!(!finite, "bit {bit}: {e}");
                            non_finite += 1;
                        }
                    }
                }
            }
        }
    }
    println!(
        "npy bit flips: {} bits: {refused} refused (header), {same} header flips with the same meaning, \
         {data_changed} data flips ({non_finite} non-finite, refused by the finite-checked readers)",
        base.len() * 8
    );
    assert!(refused > 0 && data_changed > 0);
}

// ---------------------------------------------------------------------------------------
// Checkpoints

fn tiny_mlp(dim: usize) -> MlpConfig {
    MlpConfig {
        dim,
        width: 4,
        depth: 1,
        embed: EmbedConfig::Fourier { dim: 4, scale: 1.0 },
        num_classes: 0,
    }
}

/// A small valid score checkpoint (weights and EMA) and a classifier one.
fn checkpoint_bases() -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let sde = VpSde::default();
    let dev = Device::Cpu;
    let info = |kind, model| CheckpointInfo {
        kind,
        sde: sde.name().to_string(),
        sde_fingerprint: checkpoint::sde_fingerprint(&sde),
        sde_source: sde.source(),
        model,
        train: None,
        data: Some("moons".into()),
        step: 3,
        adam_t: 3,
        version: "fuzz".into(),
    };
    let tensors = |w: &sbdm_runtime::model::Weights| {
        let mut t = Vec::new();
        for (name, v) in w.vars() {
            t.push((format!("net/{name}"), v.as_tensor().clone()));
            t.push((format!("ema/{name}"), v.as_tensor().clone()));
        }
        t
    };
    let cfg = ModelConfig {
        net: NetConfig::Mlp(tiny_mlp(2)),
        ..Default::default()
    };
    let score = NetModel::new(sde, cfg.clone(), 1, &dev).unwrap();
    let p = dir.path().join("score.safetensors");
    checkpoint::save(
        &p,
        &info(ModelKind::Score, cfg.clone()),
        &tensors(score.weights()),
    )
    .unwrap();
    let mut out = vec![std::fs::read(&p).unwrap()];
    let clf_cfg = ClassifierConfig {
        net: NetConfig::Mlp(tiny_mlp(2)),
        num_classes: 3,
    };
    let clf = ClassifierModel::new(sde, clf_cfg, 1.0, 1, &dev).unwrap();
    let p = dir.path().join("clf.safetensors");
    let kind = ModelKind::Classifier { num_classes: 3 };
    checkpoint::save(&p, &info(kind, cfg), &tensors(clf.weights())).unwrap();
    out.push(std::fs::read(&p).unwrap());
    out
}

/// FNV-1a 64 over `(name, bytes)` pairs, as the checkpoint's checksums.
fn fnv(items: &[(&str, &[u8])]) -> u64 {
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

/// An edit of a checkpoint's header that keeps (or recomputes) its checksums, so that
/// the reader gets past them to the shapes, offsets and model configuration.
#[derive(Clone, Debug)]
enum HeaderEdit {
    /// A model configuration field (`width`, `depth`, `dim`, `num_classes`, ...).
    Model(&'static str, u64),
    /// The embedding's dimension.
    EmbedDim(u64),
    /// The classifier's number of classes (in `kind`).
    Classes(u64),
    /// A tensor's shape entry.
    Shape(usize, usize, u64),
    /// A tensor's dtype.
    Dtype(usize, &'static str),
    /// A tensor's data offsets.
    Offsets(usize, u64, u64),
    /// The sigma_data of the model.
    SigmaData(f64),
    /// Drop the metadata checksum (an older file).
    DropInfoChecksum,
    /// Replace the stored declaration's text.
    Source(&'static str),
}

fn header_edit() -> impl Strategy<Value = HeaderEdit> {
    let big = prop_oneof![
        Just(0u64),
        Just(1u64),
        Just(3u64),
        Just(1_000_000_000u64),
        Just(u64::MAX),
        Just(1u64 << 32),
        0u64..100,
    ];
    prop_oneof![
        3 => (prop::sample::select(vec!["width", "depth", "dim", "num_classes"]), big.clone())
            .prop_map(|(f, v)| HeaderEdit::Model(f, v)),
        1 => big.clone().prop_map(HeaderEdit::EmbedDim),
        1 => big.clone().prop_map(HeaderEdit::Classes),
        2 => (0usize..64, 0usize..3, big.clone()).prop_map(|(i, j, v)| HeaderEdit::Shape(i, j, v)),
        1 => (0usize..64, prop::sample::select(vec!["F16", "F64", "U8", "BOOL", "I64", "X"]))
            .prop_map(|(i, d)| HeaderEdit::Dtype(i, d)),
        1 => (0usize..64, big.clone(), big).prop_map(|(i, a, b)| HeaderEdit::Offsets(i, a, b)),
        1 => prop::sample::select(vec![0.0, -1.0, 1e308, f64::MIN_POSITIVE]).prop_map(HeaderEdit::SigmaData),
        1 => Just(HeaderEdit::DropInfoChecksum),
        1 => prop::sample::select(vec![
            "struct X { time = [1e-3, 1.0]; mean = 1.0; std = t; }",
            "struct X { time = [1.0, 0.0]; mean = 1.0; std = t; }",
            "struct X {",
            "",
        ])
        .prop_map(HeaderEdit::Source),
    ]
}

/// `base` with its header edited by `edits`; `recompute` recomputes the metadata
/// checksum after the edits (else the file keeps the old one).
fn edited_checkpoint(base: &[u8], edits: &[HeaderEdit], recompute: bool) -> Vec<u8> {
    let n = u64::from_le_bytes(base[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&base[8..8 + n]).unwrap();
    let data = &base[8 + n..];
    let obj = header.as_object_mut().unwrap();
    let mut meta = obj.remove("__metadata__").unwrap();
    let mut info: serde_json::Value = serde_json::from_str(meta["info"].as_str().unwrap()).unwrap();
    let mut names: Vec<String> = obj.keys().cloned().collect();
    names.sort();
    let mut drop_checksum = false;
    for e in edits {
        let tensor = |i: usize| names[i % names.len()].clone();
        match e {
            HeaderEdit::Model(f, v) => info["model"]["net"][*f] = (*v).into(),
            HeaderEdit::EmbedDim(v) => info["model"]["net"]["embed"]["dim"] = (*v).into(),
            HeaderEdit::Classes(v) => {
                info["kind"] = serde_json::json!({"type": "classifier", "num_classes": v})
            }
            HeaderEdit::Shape(i, j, v) => {
                let t = tensor(*i);
                let shape = obj[&t]["shape"].as_array_mut().unwrap();
                if shape.is_empty() {
                    shape.push((*v).into());
                } else {
                    let k = j % shape.len();
                    shape[k] = (*v).into();
                }
            }
            HeaderEdit::Dtype(i, d) => obj.get_mut(&tensor(*i)).unwrap()["dtype"] = (*d).into(),
            HeaderEdit::Offsets(i, a, b) => {
                obj.get_mut(&tensor(*i)).unwrap()["data_offsets"] = serde_json::json!([a, b])
            }
            HeaderEdit::SigmaData(s) => info["model"]["sigma_data"] = (*s).into(),
            HeaderEdit::DropInfoChecksum => drop_checksum = true,
            HeaderEdit::Source(text) => {
                info["sde_source"] = serde_json::json!({"text": text, "params": []})
            }
        }
    }
    let info_text = info.to_string();
    meta["info"] = info_text.clone().into();
    if drop_checksum {
        meta.as_object_mut().unwrap().remove("info_checksum");
    } else if recompute {
        let sum = fnv(&[
            ("format", checkpoint::FORMAT.as_bytes()),
            ("info", info_text.as_bytes()),
        ]);
        meta["info_checksum"] = format!("{sum:016x}").into();
    }
    obj.insert("__metadata__".into(), meta);
    let mut h = header.to_string().into_bytes();
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}

fn checkpoint_kind(msg: &str) -> &'static str {
    if msg.contains("of memory") {
        "refused: memory budget"
    } else if msg.contains("metadata checksum") {
        "refused: metadata checksum"
    } else if msg.contains("checksum") {
        "refused: tensor checksum"
    } else if msg.contains("parameters, but") {
        "refused: model size vs tensors"
    } else if msg.contains("does not build") {
        "refused: model configuration invalid"
    } else if msg.contains("safetensors") || msg.contains("header") {
        "refused: safetensors structure (shapes, offsets, truncation)"
    } else if msg.contains("metadata") || msg.contains("format") {
        "refused: metadata"
    } else {
        "refused: model or SDE check"
    }
}

/// Loads `bytes` as a checkpoint, then builds its model: no panic, one-line errors, and
/// an accepted model holds the file's tensors.
fn check_checkpoint(bytes: &[u8], path: &Path) -> Result<Outcome, String> {
    std::fs::write(path, bytes).map_err(|e| e.to_string())?;
    let info = checkpoint::read_info(path);
    let loaded = checkpoint::load(path, &Device::Cpu);
    let ck = match loaded {
        Ok(ck) => ck,
        Err(e) => {
            let msg = e.to_string();
            one_line(&msg)?;
            if !msg.contains(&path.display().to_string()) {
                return Err(format!("the error does not name the file: {msg}"));
            }
            return Ok(Outcome::Refused(checkpoint_kind(&msg)));
        }
    };
    if info.as_ref().ok() != Some(&ck.info) {
        return Err("read_info and load disagree".into());
    }
    let _ = ck
        .info
        .stored_sde(path)
        .map_err(|e| one_line(&e.to_string()));
    let sde = VpSde::default();
    let built = match ck.info.kind {
        ModelKind::Score => model_from_checkpoint(&ck, sde, true).map(|m| {
            m.weights()
                .vars()
                .iter()
                .map(|(_, v)| v.as_tensor().elem_count())
                .sum::<usize>()
        }),
        ModelKind::Classifier { .. } => {
            load_classifier(path, sde, true, &Device::Cpu).map(|(m, _)| {
                m.weights()
                    .vars()
                    .iter()
                    .map(|(_, v)| v.as_tensor().elem_count())
                    .sum::<usize>()
            })
        }
    };
    match built {
        Ok(params) => {
            let held: usize = ck.group("net").iter().map(|(_, t)| t.elem_count()).sum();
            if params != held {
                return Err(format!("a model of {params} parameters from {held} stored"));
            }
            Ok(Outcome::Accepted)
        }
        Err(e) => {
            let msg = e.to_string();
            one_line(&msg)?;
            Ok(Outcome::Refused(checkpoint_kind(&msg)))
        }
    }
}

#[test]
fn fuzz_checkpoint_loader() {
    let bases = checkpoint_bases();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzz.safetensors");
    let b1 = bases.clone();
    let b2 = bases.clone();
    let input = prop_oneof![
        2 => (0..bases.len(), mutations()).prop_map(move |(i, ms)| mutated(&b1[i], &ms)),
        2 => (0..bases.len(), prop::collection::vec(header_edit(), 1..4), prop::bool::weighted(0.9))
            .prop_map(move |(i, es, r)| edited_checkpoint(&b2[i], &es, r)),
    ];
    fuzz("checkpoint", 256, input, |bytes| {
        check_checkpoint(bytes, &path)
    });
}

/// Every prefix of a valid checkpoint is refused (metadata alone too, where the cut
/// falls in the header); the whole file loads.
#[test]
fn checkpoint_cut_at_every_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.safetensors");
    let base = &checkpoint_bases()[0];
    let n = 8 + u64::from_le_bytes(base[..8].try_into().unwrap()) as usize;
    for cut in 0..base.len() {
        std::fs::write(&path, &base[..cut]).unwrap();
        let e = checkpoint::load(&path, &Device::Cpu)
            .err()
            .unwrap_or_else(|| panic!("a cut at byte {cut} of {} loaded", base.len()));
        one_line(&e.to_string()).unwrap();
        if cut < n {
            assert!(checkpoint::read_info(&path).is_err(), "cut {cut}");
        }
    }
    std::fs::write(&path, base).unwrap();
    checkpoint::load(&path, &Device::Cpu).unwrap();
}

/// Bytes between the bytes whose 8 bits are flipped one at a time: 3 in CI (every bit of
/// every third byte), 1 in the long run (`SBDM_FUZZ_CASES` ≥ 10000: every bit).
fn flip_stride() -> usize {
    if cases(0) >= 10_000 {
        1
    } else {
        3
    }
}

/// Every single-bit flip of a valid checkpoint is refused: the checksums cover the
/// tensors' names and bytes and the metadata; the safetensors reader checks the rest of
/// the header (shapes, dtypes, offsets).
#[test]
fn checkpoint_single_bit_flips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flip.safetensors");
    let base = &checkpoint_bases()[0];
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    let bits = (0..base.len())
        .step_by(flip_stride())
        .flat_map(|byte| (0..8).map(move |k| 8 * byte + k));
    for bit in bits {
        let mut b = base.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        std::fs::write(&path, &b).unwrap();
        match checkpoint::load(&path, &Device::Cpu) {
            Ok(_) => panic!("the flip of bit {bit} (byte {}) loaded", bit / 8),
            Err(e) => {
                let msg = e.to_string();
                one_line(&msg).unwrap();
                *kinds.entry(checkpoint_kind(&msg)).or_default() += 1;
            }
        }
    }
    let n: usize = kinds.values().sum();
    println!(
        "checkpoint bit flips: {n} of the {} bits of a {}-byte file, all refused: {kinds:?}",
        base.len() * 8,
        base.len()
    );
}

// ---------------------------------------------------------------------------------------
// Mixture JSON

const VALID_MIXTURE: &str =
    "{\"weights\": [0.25, 0.75], \"means\": [[-2.0, 0.5], [2.0, -1.0]], \"stds\": [0.5, 0.3]}\n";

/// A mixture file put together from parts.
#[derive(Clone, Debug)]
struct MixtureParts {
    weights: Vec<String>,
    means: Vec<Vec<String>>,
    stds: Vec<String>,
    extra: Option<&'static str>,
    drop: Option<usize>,
    nest: usize,
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => (-5.0f64..5.0).prop_map(|v| format!("{v}")),
        1 => prop::sample::select(vec![
            "0", "-0", "1", "0.5", "1e308", "1e309", "-1e308", "1e-320", "NaN", "\"1\"",
            "null", "true", "[]", "{}", "18446744073709551616",
        ])
        .prop_map(String::from),
    ]
}

fn mixture_parts() -> impl Strategy<Value = MixtureParts> {
    (1usize..5, 1usize..4).prop_flat_map(|(k, d)| {
        (
            prop_oneof![
                3 => Just(vec![format!("{}", 1.0 / k as f64); k]),
                1 => prop::collection::vec(number(), 0..k + 2),
            ],
            prop_oneof![
                3 => prop::collection::vec(prop::collection::vec(number(), d..d + 1), k..k + 1),
                1 => prop::collection::vec(prop::collection::vec(number(), 0..d + 2), 0..k + 2),
            ],
            prop_oneof![
                3 => prop::collection::vec((0.01f64..3.0).prop_map(|v| v.to_string()), k..k + 1),
                1 => prop::collection::vec(number(), 0..k + 2),
            ],
            prop::option::weighted(
                0.1,
                prop::sample::select(vec!["\"x\": 1", "\"weights\": [1]"]),
            ),
            prop::option::weighted(0.1, 0usize..3),
            prop_oneof![9 => Just(0usize), 1 => 1usize..300],
        )
            .prop_map(|(weights, means, stds, extra, drop, nest)| MixtureParts {
                weights,
                means,
                stds,
                extra,
                drop,
                nest,
            })
    })
}

impl MixtureParts {
    fn text(&self) -> String {
        let list = |v: &[String]| format!("[{}]", v.join(", "));
        let means: Vec<String> = self.means.iter().map(|m| list(m)).collect();
        let mut fields = vec![
            format!("\"weights\": {}", list(&self.weights)),
            format!(
                "\"means\": {}{}{}",
                "[".repeat(self.nest),
                list(&means),
                "]".repeat(self.nest)
            ),
            format!("\"stds\": {}", list(&self.stds)),
        ];
        if let Some(d) = self.drop {
            fields.remove(d);
        }
        if let Some(e) = self.extra {
            fields.push(e.to_string());
        }
        format!("{{{}}}", fields.join(", "))
    }
}

fn mixture_kind(msg: &str) -> &'static str {
    if msg.contains("weight") && !msg.contains("line") {
        "refused: weights"
    } else if msg.contains("std") && !msg.contains("line") {
        "refused: stds"
    } else if msg.contains("mean") && !msg.contains("line") {
        "refused: means"
    } else if msg.contains("components") {
        "refused: component counts"
    } else {
        "refused: JSON syntax or type"
    }
}

/// Parses `text` as a mixture (from memory and from a file): an accepted mixture holds
/// finite positive weights summing to 1, finite means of one dimension and finite
/// positive stds, and its score is finite.
fn check_mixture(bytes: &[u8], path: &Path) -> Result<Outcome, String> {
    std::fs::write(path, bytes).map_err(|e| e.to_string())?;
    let file = GaussianMixture::load(path);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let mem = GaussianMixture::from_json(text);
        if mem.is_ok() != file.is_ok() {
            return Err("memory and file readers disagree".into());
        }
    }
    match file {
        Ok(m) => {
            let w = m.weights();
            let ok = w.iter().all(|w| w.is_finite() && *w > 0.0)
                && (w.iter().sum::<f64>() - 1.0).abs() <= 1e-6
                && m.means()
                    .iter()
                    .all(|mu| mu.len() == m.dim() && mu.iter().all(|v| v.is_finite()));
            if !ok {
                return Err(format!("accepted an invalid mixture: {m:?}"));
            }
            let x = vec![0.3; m.dim()];
            let mut s = vec![0.0; m.dim()];
            m.score_at(&x, 0.9, 0.4, &mut s);
            if s.iter().any(|v| v.is_nan()) {
                return Err(format!("a NaN score from {m:?}"));
            }
            Ok(Outcome::Accepted)
        }
        Err(e) => {
            let msg = e.to_string();
            one_line(&msg)?;
            if !msg.contains(&path.display().to_string()) {
                return Err(format!("the error does not name the file: {msg}"));
            }
            Ok(Outcome::Refused(mixture_kind(&msg)))
        }
    }
}

#[test]
fn fuzz_mixture_json_loader() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mix.json");
    let input = prop_oneof![
        2 => mixture_parts().prop_map(|p| p.text().into_bytes()),
        1 => mutations().prop_map(|ms| mutated(VALID_MIXTURE.as_bytes(), &ms)),
        1 => (mixture_parts(), mutations()).prop_map(|(p, ms)| mutated(p.text().as_bytes(), &ms)),
    ];
    fuzz("mixture", 256, input, |bytes| check_mixture(bytes, &path));
}

/// Every prefix of a valid mixture file is refused, except those that only drop its
/// trailing newline; every single-bit flip is refused or reads as a valid mixture (a
/// flipped digit is another number: JSON has no checksum; the values are validated).
#[test]
fn mixture_cuts_and_bit_flips() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mix.json");
    let base = VALID_MIXTURE.as_bytes();
    for cut in 0..base.len() {
        std::fs::write(&path, &base[..cut]).unwrap();
        let r = GaussianMixture::load(&path);
        assert_eq!(r.is_ok(), cut == base.len() - 1, "cut {cut}");
    }
    let (mut refused, mut valid) = (0, 0);
    for bit in 0..base.len() * 8 {
        let mut b = base.to_vec();
        b[bit / 8] ^= 1 << (bit % 8);
        match check_mixture(&b, &path).unwrap() {
            Outcome::Accepted => valid += 1,
            Outcome::Refused(_) => refused += 1,
        }
    }
    println!("mixture bit flips: {refused} refused, {valid} still a valid mixture");
    assert!(refused > 0 && valid > 0);
}

// ---------------------------------------------------------------------------------------
// .sde declarations

/// The declarations of the named SDEs (what `sbdm derive` and checkpoints hold).
fn declarations() -> Vec<String> {
    named::ALL
        .iter()
        .filter_map(|e| named::by_name(e.name).ok()?.source())
        .map(|s| s.text.to_string())
        .collect()
}

const TOKENS: [&str; 48] = [
    "struct",
    "pub",
    "Sde",
    "{",
    "}",
    "params",
    "time",
    "=",
    "[",
    "]",
    ";",
    ",",
    "let",
    "drift",
    "diffusion",
    "mean",
    "std",
    "x",
    "t",
    "beta",
    "f64",
    ":",
    "1e-3",
    "1.0",
    "0.5",
    "20.0",
    "-",
    "+",
    "*",
    "/",
    "(",
    ")",
    ".sqrt()",
    ".exp()",
    ".ln()",
    ".sin()",
    ".cos()",
    ".powi(2)",
    ".powf(0.5)",
    ".tanh()",
    "0",
    "1e308",
    "lambda",
    "///",
    "\"doc\"",
    "#",
    "'",
    "\\",
];

/// An expression over `t`, `x` (drift only) and the parameter `k`.
fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("t".to_string()),
        Just("k".to_string()),
        prop::sample::select(vec!["1.0", "0.5", "2.0", "1e-3", "0.0", "1e30", "3"])
            .prop_map(String::from),
    ];
    leaf.prop_recursive(5, 24, 2, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(vec!["+", "-", "*", "/"]),
                inner.clone()
            )
                .prop_map(|(a, op, b)| format!("({a} {op} {b})")),
            (
                inner.clone(),
                prop::sample::select(vec![
                    ".sqrt()",
                    ".exp()",
                    ".ln()",
                    ".sin()",
                    ".cos()",
                    ".tan()",
                    ".powi(2)",
                    ".powf(1.5)",
                    ".cbrt()",
                    ".atan()",
                    ".tanh()",
                    ".powi(-3)",
                    ".exp_m1()",
                    ".ln_1p()",
                    ".sinh()",
                    ".recip()"
                ])
            )
                .prop_map(|(a, m)| format!("({a}){m}")),
            inner.prop_map(|a| format!("-{a}")),
        ]
    })
}

/// A declaration with generated expressions, in one of four forms: drift/diffusion or
/// mean/std, raw (often refused by the derivation) or shaped to be valid (F ≤ 0,
/// g² > 0; a(0) = 1, b > 0) so that the derivation runs to its end.
fn structured_declaration() -> impl Strategy<Value = String> {
    (
        0u8..4,
        expr(),
        expr(),
        prop::option::of(expr()),
        prop_oneof![
            6 => Just("[1e-3, 1.0]"),
            1 => prop::sample::select(vec!["[0.0, 1.0]", "[1e-5, 80.0]", "[1.0, 0.5]"]),
        ],
        prop::sample::select(vec!["1.0", "0.5", "2.0", "0.0", "-2.0", "1e300"]),
    )
        .prop_map(|(form, e1, e2, l, time, k)| {
            let lets = l.map(|l| format!("    let u = {l};\n")).unwrap_or_default();
            let body = match form {
                0 => format!("    drift = {e1} * x;\n    diffusion = {e2};"),
                1 => format!("    mean = {e1};\n    std = {e2};"),
                2 => format!(
                    "    drift = -({e1}).powi(2) * x;\n    diffusion = (({e2}).powi(2) + 0.1).sqrt();"
                ),
                _ => format!(
                    "    mean = (-({e1}).powi(2) * t).exp();\n    std = (({e2}).powi(2) * t + 1e-3).sqrt();"
                ),
            };
            format!("struct Fz {{\n    params {{ k: f64 = {k} }}\n    time = {time};\n{lets}{body}\n}}")
        })
}

fn sde_kind(msg: &str) -> &'static str {
    if msg.contains("not valid declaration syntax") {
        "refused: not Rust tokens"
    } else if msg.contains("expected") || msg.contains("unexpected") || msg.contains("missing") {
        "refused: declaration syntax"
    } else {
        "refused: the derivation (math)"
    }
}

/// Parses and derives `text` at run time, prints its derivation, evaluates it and sets
/// its parameters: no panic (a caught one reads "internal error"), one-line-per-problem
/// errors.
fn check_declaration(text: &str) -> Result<Outcome, String> {
    match DynSde::parse(text) {
        Ok(sde) => {
            let d = sde.derivation();
            let _ = (d.to_string(), d.latex());
            let (t0, t1) = sde.time_range();
            for i in 0..=4 {
                let t = t0 + (t1 - t0) * f64::from(i) / 4.0;
                let _ = (
                    sde.mean_coef(t),
                    sde.std(t),
                    sde.diffusion_sq(t),
                    sde.drift_coef(t),
                    sde.log_snr(t),
                );
            }
            for (name, _) in sde.params() {
                for v in [0.0, -1.0, 1e10, 0.25] {
                    if let Err(e) = sde.with_params(&[(name.clone(), v)]) {
                        let m = e.to_string();
                        if m.contains("internal error") {
                            return Err(m);
                        }
                    }
                }
            }
            Ok(Outcome::Accepted)
        }
        Err(e) => {
            let msg = e.to_string();
            if msg.contains("internal error") || msg.contains("panicked") {
                return Err(msg);
            }
            if std::env::var_os("SBDM_FUZZ_SHOW").is_some() {
                println!("{text:?}\n  -> {msg}");
            }
            Ok(Outcome::Refused(sde_kind(&msg)))
        }
    }
}

#[test]
fn fuzz_sde_declaration_parser() {
    let decls = declarations();
    assert!(!decls.is_empty());
    let d1 = decls.clone();
    let input = prop_oneof![
        2 => structured_declaration(),
        2 => (0..decls.len(), mutations())
            .prop_map(move |(i, ms)| String::from_utf8_lossy(&mutated(d1[i].as_bytes(), &ms)).into_owned()),
        1 => prop::collection::vec(prop::sample::select(&TOKENS[..]), 0..40).prop_map(|t| t.join(" ")),
        1 => ".{0,200}",
    ];
    fuzz("sde", 256, input, |text| check_declaration(text));
}

/// Cut at every byte and flipped at every bit (of the text of the VP declaration), a
/// declaration is refused or derives: never a panic.
#[test]
fn sde_cuts_and_bit_flips() {
    let base = VpSde::default().source().unwrap().text.to_string();
    let bytes = base.as_bytes();
    let (mut refused, mut derived) = (0, 0);
    let mut count = |o: Outcome| match o {
        Outcome::Accepted => derived += 1,
        Outcome::Refused(_) => refused += 1,
    };
    for cut in 0..bytes.len() {
        count(check_declaration(&String::from_utf8_lossy(&bytes[..cut])).unwrap());
    }
    let bits = (0..bytes.len())
        .step_by(flip_stride())
        .flat_map(|byte| (0..8).map(move |k| 8 * byte + k));
    for bit in bits {
        let mut b = bytes.to_vec();
        b[bit / 8] ^= 1 << (bit % 8);
        count(check_declaration(&String::from_utf8_lossy(&b)).unwrap());
    }
    println!("sde cuts and bit flips: {refused} refused, {derived} derived");
}

// ---------------------------------------------------------------------------------------
// The memory budget.

/// A file's shape is checked against the file before the budget: a huge claim is
/// refused as truncated whatever the budget; a real array larger than the budget is
/// refused by the budget, naming both.
#[test]
fn npy_larger_than_the_budget_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("big.npy");
    let x = Tensor::zeros((1 << 18, 2), DType::F32, &Device::Cpu).unwrap(); // 2 MiB
    io::write_npy(&path, &x).unwrap();
    // The budget is read per call; this test's process sets it for itself only.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "budget_child", "--nocapture"])
        .env("SBDM_MEMORY_LIMIT", "1M")
        .env("SBDM_FUZZ_BIG", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "needs about 4.0 MiB of memory, more than the 1.0 MiB SBDM_MEMORY_LIMIT allows"
        ),
        "{stdout}"
    );
}

/// The child process of the test above, run with `SBDM_MEMORY_LIMIT=1M` and
/// `SBDM_FUZZ_BIG`; without them (an ordinary test run) it has nothing to do.
#[test]
fn budget_child() {
    let Some(path) = std::env::var_os("SBDM_FUZZ_BIG") else {
        return;
    };
    let e = io::read_npy_any(&path).unwrap_err().to_string();
    println!("{e}");
    assert!(e.contains("array of shape [262144, 2]"), "{e}");
}
