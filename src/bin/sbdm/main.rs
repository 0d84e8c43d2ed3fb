//! The `sbdm` command line.

use std::process::ExitCode;

use anyhow::anyhow;
use clap::{Parser, Subcommand};

mod bench;
mod derive;
mod sample;
mod train;

// See the `mimalloc` dependency in Cargo.toml and docs/benchmarks.md for why.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Score-based diffusion models: derive, sample, train.
#[derive(Parser, Debug)]
#[command(name = "sbdm", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the derivation of a built-in SDE, or of one given on the command line.
    Derive(derive::DeriveArgs),
    /// Sample with any sampler from an exact Gaussian-mixture score or a trained network.
    Sample(sample::SampleArgs),
    /// Train a score network by denoising score matching.
    Train(train::TrainArgs),
    /// Benchmarks (see docs/benchmarks.md).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    sbdm_runtime::train::prefer_batch_parallelism();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Derive(args) => derive::run(&args),
        Command::Sample(args) => sample::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sbdm: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The one line of an error (candle's carry a backtrace when RUST_BACKTRACE is set).
fn one_line(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("{}", e.to_string().lines().next().unwrap_or("error"))
}

/// The value of a flag the command cannot do without.
fn require<T: Clone>(v: &Option<T>, flag: &str) -> anyhow::Result<T> {
    v.clone()
        .ok_or_else(|| anyhow!("missing {flag} (see the command's --help)"))
}

/// Names joined for a "valid: …" message.
fn list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names.into_iter().collect::<Vec<_>>().join(", ")
}

/// The rows of a `help` listing: a name and its one-line description each.
type Listing = Vec<(&'static str, &'static str)>;

/// What produces a flag's listing.
type Lister = fn() -> Listing;

/// `--flag help`: if one of `flags` (a flag's value and its listing) has the value
/// `help`, prints that listing, names aligned, and returns true.
fn print_listing(flags: &[(Option<&str>, Lister)]) -> bool {
    let Some((_, listing)) = flags.iter().find(|(v, _)| *v == Some("help")) else {
        return false;
    };
    let rows = listing();
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, description) in rows {
        println!("{name:<width$}  {description}");
    }
    true
}
