//! The `sbdm` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod derive;
mod sample;

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
    /// Sample with any sampler from an exact Gaussian-mixture score and report the error.
    Sample(sample::SampleArgs),
    /// Benchmarks (see docs/benchmarks.md).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Derive(args) => derive::run(&args),
        Command::Sample(args) => sample::run(&args),
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
