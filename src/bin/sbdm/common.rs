//! What several commands share: one-line errors, required flags, choice flags with their
//! `help` listings, progress spinners and memory readings.

use std::time::Duration;

use anyhow::{anyhow, Result};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use sbdm_runtime::sampling::Sampler;

/// The one line of an error (candle's carry a backtrace when RUST_BACKTRACE is set).
pub fn one_line(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{}", e.to_string().lines().next().unwrap_or("error"))
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
