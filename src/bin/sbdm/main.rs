//! The `sbdm` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod derive;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Derive(args) => derive::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sbdm: {e}");
            ExitCode::FAILURE
        }
    }
}
