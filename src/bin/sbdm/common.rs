//! What several commands share: one-line errors, required flags, choice flags with their
//! `help` listings, progress spinners and memory readings.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use candle_core::Tensor;
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use sbdm_runtime::io::{self, PendingFile};
use sbdm_runtime::limits;
use sbdm_runtime::report::imgrid::columns_png;
use sbdm_runtime::report::plot::{self, Mark, ScatterConfig, Series};
use sbdm_runtime::sampling::{GridKind, NoiseKind, Sampler, TimeGrid};
use sbdm_runtime::GaussianKernel;

/// The one line of an error (candle's carry a backtrace when RUST_BACKTRACE is set).
pub fn one_line(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{}", e.to_string().lines().next().unwrap_or("error"))
}

/// `--device`, shared by every command that evaluates a model: where tensors, network
/// weights and their steps live.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceFlag {
    /// The device: cpu, or cuda[:N] in a build with the `cuda` feature
    /// (scripts/cuda-toolkit.sh; README). A mixture's exact score is computed on the CPU
    /// whatever the device.
    #[arg(long = "device", default_value = "cpu", value_name = "cpu|cuda[:N]")]
    pub name: String,
}

impl DeviceFlag {
    /// The device, or a one-line error naming what is missing.
    pub fn open(&self) -> Result<candle_core::Device> {
        open_device(&self.name)
    }
}

/// `--noise`, shared by every command that draws a sampler's noise: the generator.
#[derive(clap::Args, Debug, Clone)]
pub struct NoiseFlag {
    /// The noise generator (`help` lists them): chacha (drawn on the host, the default)
    /// or philox (counter-based, computed on the device, inside the sampler's steps: a GPU
    /// draws its own noise; the same numbers on every device).
    #[arg(long = "noise", value_parser = choice(NoiseKind::ALL.to_vec()), value_name = "NAME")]
    pub kind: Option<Pick<NoiseKind>>,
}

impl NoiseFlag {
    /// The generator chosen (ChaCha by default).
    pub fn kind(&self) -> NoiseKind {
        self.kind.as_ref().and_then(Pick::value).unwrap_or_default()
    }

    /// Whether `--noise help` asks for the listing.
    pub fn asks_help(&self) -> bool {
        asks_help(&self.kind)
    }

    /// The generators' listing.
    pub fn listing() -> Listing {
        NoiseKind::ALL.iter().map(|(_, n, d)| (*n, *d)).collect()
    }
}

/// The device `--device NAME` names, or a one-line error naming what is missing.
pub fn open_device(name: &str) -> Result<candle_core::Device> {
    sbdm_runtime::device::by_name(name).map_err(|e| anyhow!("--device: {}", one_line(e)))
}

/// A panic caught by [`no_panic`] or by `main`: a bug, reported in one line (exit code
/// 101, as an uncaught panic would have).
#[derive(Debug)]
pub struct InternalError(pub String);

impl std::fmt::Display for InternalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InternalError {}

/// The last panic's message and place, recorded by the hook [`quiet_panics`] installs.
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Replaces the panic hook by one that records the message (for [`no_panic`] and
/// `main` to report in one line) instead of printing it and a backtrace.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let line = format!("{}{place}", message.lines().next().unwrap_or(""));
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = Some(line);
    }));
}

/// The message of the last panic (see [`quiet_panics`]).
pub fn last_panic() -> String {
    LAST_PANIC
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `f`; a panic in it (a bug, in the symbolic core say) becomes a one-line
/// [`InternalError`] naming `what` was being done.
pub fn no_panic<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(InternalError(format!(
            "internal error while {what} (a bug; please report the input): {}",
            last_panic()
        ))
        .into())
    })
}

/// The value of a flag the command cannot do without.
pub fn require<T: Clone>(v: &Option<T>, flag: &str) -> Result<T> {
    v.clone()
        .ok_or_else(|| anyhow!("missing {flag} (see the command's --help)"))
}

/// The rows of a `help` listing: a name and its one-line description each.
pub type Listing = Vec<(&'static str, &'static str)>;

/// The samplers' rows, from [`Sampler::ALL`].
pub fn sampler_rows() -> Vec<(Sampler, &'static str, &'static str)> {
    Sampler::ALL
        .iter()
        .map(|s| (*s, s.name(), s.description()))
        .collect()
}

/// The grids' rows: `auto` then [`GridKind::ALL`].
pub fn grid_rows() -> Vec<(Option<GridKind>, &'static str, &'static str)> {
    let auto = (
        None,
        "auto",
        "karras where t is EDM's sigma, uniform otherwise (the default)",
    );
    std::iter::once(auto)
        .chain(GridKind::ALL.iter().map(|(k, n, d)| (Some(*k), *n, *d)))
        .collect()
}

/// `steps` steps of `--grid` `kind` (`None`, `auto`: [`GridKind::default_for`] the SDE)
/// from `t_max` down to `t_min` (each defaulting to the end of the SDE's time range): the
/// grid `sbdm sample` steps through unless given `--times` or `--spacing`, and so the
/// one `sbdm encode` runs up, for a batch it encodes to decode with the same flags.
pub fn spaced_grid(
    sde: &dyn GaussianKernel,
    kind: Option<GridKind>,
    steps: usize,
    t_max: Option<f64>,
    t_min: Option<f64>,
) -> TimeGrid {
    let kind = kind.unwrap_or_else(|| GridKind::default_for(sde));
    let (lo, hi) = sde.time_range();
    TimeGrid::new(kind, steps).between(t_max.unwrap_or(hi), t_min.unwrap_or(lo))
}

/// Refuses `--steps` when the time grid a sampler builds from it would not fit in the
/// memory budget ([`limits`]); rk45 builds none (its steps only set the first step size).
pub fn check_steps(sampler: &Sampler, steps: usize) -> Result<()> {
    if matches!(sampler, Sampler::Rk45 { .. }) {
        return Ok(());
    }
    limits::check(
        format_args!("--steps {steps} (a time grid of {steps} steps)"),
        limits::grid_bytes(steps),
    )
    .map_err(one_line)
}

/// Every SDE the CLI knows by name, with a description.
pub fn sde_names() -> Listing {
    sbdm_runtime::sde::named::ALL
        .iter()
        .map(|s| (s.name, s.description))
        .collect()
}

/// Prints a listing, names aligned.
pub fn print_listing(rows: &[(&str, &str)]) {
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, description) in rows {
        println!("{name:<width$}  {description}");
    }
}

/// A choice flag's value: one of its names, or `help`, which lists them.
#[derive(Clone, Debug)]
pub enum Pick<T> {
    /// `help`: print the listing.
    Help,
    /// A value.
    Value(T),
}

impl<T: Clone> Pick<T> {
    /// The value, or `None` for `help`.
    pub fn value(&self) -> Option<T> {
        match self {
            Pick::Help => None,
            Pick::Value(v) => Some(v.clone()),
        }
    }

    /// The value given for `flag`, or `default` when the flag is absent; a flag without a
    /// default must be given.
    pub fn chosen(pick: Option<&Pick<T>>, default: Option<T>, flag: &str) -> Result<T> {
        match (pick, default) {
            (Some(p), _) => p
                .value()
                .ok_or_else(|| anyhow!("{flag} help lists the valid values")),
            (None, Some(d)) => Ok(d),
            (None, None) => Err(anyhow!("missing {flag} (see the command's --help)")),
        }
    }
}

/// Refuses `flag` when it is given (`given`) outside the setting it applies to, e.g.
/// `--cfg-rescale` without `--guidance cfg`.
pub fn applies_only(given: bool, flag: &str, applies_to: &str) -> Result<()> {
    if given {
        bail!("{flag} applies to {applies_to}");
    }
    Ok(())
}

/// A clap value parser over `(value, name, description)` rows: clap checks the name
/// against the list (its `--help` shows them) and `help` (hidden) asks for the listing.
pub fn choice<T: Clone + Send + Sync + 'static>(
    rows: Vec<(T, &'static str, &'static str)>,
) -> impl TypedValueParser<Value = Pick<T>> {
    let values: Vec<PossibleValue> = rows
        .iter()
        .map(|(_, name, description)| PossibleValue::new(*name).help(*description))
        .chain([PossibleValue::new("help").hide(true)])
        .collect();
    PossibleValuesParser::new(values).map(move |name: String| {
        rows.iter()
            .find(|(_, n, _)| *n == name)
            .map_or(Pick::Help, |(v, _, _)| Pick::Value(v.clone()))
    })
}

/// If one of `flags` (a flag's value and its listing) asks for `help`, prints that
/// listing and returns true.
pub fn print_help_listing(flags: &[(bool, &dyn Fn() -> Listing)]) -> bool {
    let Some((_, listing)) = flags.iter().find(|(asked, _)| *asked) else {
        return false;
    };
    print_listing(&listing());
    true
}

/// Whether a flag of a choice type asks for `help`.
pub fn asks_help<T>(pick: &Option<Pick<T>>) -> bool {
    matches!(pick, Some(Pick::Help))
}

/// A clap error as one line: its message and hints, without the usage footer.
pub fn clap_one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("For more information"))
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A spinner showing `message` and the elapsed time (hidden when stderr is no terminal).
pub fn spinner(message: String) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Peak resident memory of this process (Linux `VmHWM`), in bytes.
pub fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A command's output files: the samples' `.npy` and an optional PNG, claimed before any
/// work (a missing or unwritable directory fails first) and committed together, each
/// written atomically.
pub struct Outputs {
    npy: PendingFile,
    png: Option<PendingFile>,
}

impl Outputs {
    /// Claims `out` and `plot` (which must differ).
    pub fn claim(out: &Path, plot: Option<&Path>) -> Result<Outputs> {
        if plot == Some(out) {
            bail!("--plot and --out name the same file {}", out.display());
        }
        Ok(Outputs {
            npy: PendingFile::new(out).map_err(one_line)?,
            png: plot.map(PendingFile::new).transpose().map_err(one_line)?,
        })
    }

    /// Writes `x` (f32) and, if a PNG was asked for, `draw(path)`; then renames both into
    /// place.
    pub fn write(self, x: &Tensor, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        io::write_npy_pending(&self.npy, x).map_err(one_line)?;
        if let Some(png) = &self.png {
            draw(png.path())?;
        }
        self.npy.commit().map_err(one_line)?;
        if let Some(png) = self.png {
            png.commit().map_err(one_line)?;
        }
        Ok(())
    }
}

/// Draws batches side by side: images (`[N, C, H, W]`) as columns of a grid, one row per
/// sample (the first 16); vectors as a scatter of their first two coordinates, one series
/// per batch.
pub fn draw_side_by_side(dest: &Path, title: &str, batches: &[(&str, &Tensor)]) -> Result<()> {
    let Some((_, first)) = batches.first() else {
        bail!("nothing to draw");
    };
    if first.rank() == 4 {
        let scale = (64 / first.dim(3)?).max(1);
        let columns: Vec<&Tensor> = batches.iter().map(|(_, t)| *t).collect();
        return columns_png(dest, &columns, 16, scale).map_err(one_line);
    }
    let series = batches
        .iter()
        .map(|(label, t)| Series::from_tensor(label, t, Mark::Dot, 20_000))
        .collect::<sbdm_runtime::error::Result<Vec<_>>>()?;
    let cfg = ScatterConfig {
        title: title.to_string(),
        ..Default::default()
    };
    plot::draw_scatter(dest, &series, &cfg).map_err(one_line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_one_line() {
        let previous = std::panic::take_hook();
        quiet_panics();
        let r: Result<()> = no_panic("deriving the SDE", || panic!("boom\nsecond line"));
        let ok = no_panic("adding", || Ok(1 + 1));
        std::panic::set_hook(previous);
        let e = r.unwrap_err();
        assert!(e.downcast_ref::<InternalError>().is_some());
        let msg = e.to_string();
        assert!(
            msg.starts_with(
                "internal error while deriving the SDE (a bug; please report the input): boom at "
            ),
            "{msg}"
        );
        assert_eq!(msg.lines().count(), 1, "{msg}");
        assert_eq!(ok.unwrap(), 2);
    }
}
