//! The `sbdm` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod common;
mod derive;
mod encode;
mod inpaint;
mod likelihood;
mod models;
mod sample;
mod sde_arg;
mod train;
mod translate;

// See the `mimalloc` dependency in Cargo.toml and docs/benchmarks.md for why.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps freed pages mapped instead of returning them to the OS a few milliseconds after
/// they are freed (mimalloc's `purge_delay` = -1), unless `MIMALLOC_PURGE_DELAY` says
/// otherwise. Training and sampling free and reallocate the same large buffers every
/// step: purged pages came back as page faults and zeroing (a U-Net training step made
/// ~50 000 of them, now ~450, and ran 2–9% faster; peak RSS the same: docs/benchmarks.md).
#[cfg(feature = "mimalloc")]
fn keep_freed_pages() {
    // The index of `mi_option_purge_delay` in mimalloc 2's and 3's `mi_option_e` (the
    // crate does not name it).
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        #[allow(unsafe_code, reason = "an FFI call into the allocator")]
        // SAFETY: setting an option is a plain store in mimalloc; it is done here, first
        // thing in `main`, before any other thread exists (the call is not thread safe).
        unsafe {
            libmimalloc_sys::mi_option_set(PURGE_DELAY, -1)
        };
    }
}

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
    /// Train a score network by denoising score matching, or a time-dependent classifier.
    Train(train::TrainArgs),
    /// Translate a source batch with a target-domain model: SDEdit, ILVR or EGSDE.
    Translate(translate::TranslateArgs),
    /// Fill in the unknown part of a batch (mask), with RePaint's resampling optional.
    Inpaint(inpaint::InpaintArgs),
    /// log p(x) of data through the probability-flow ODE (nats, bits/dim).
    Likelihood(likelihood::LikelihoodArgs),
    /// Encode data to x_T along the probability-flow ODE (decode with `sbdm sample --init`).
    Encode(encode::EncodeArgs),
    /// Benchmarks (see docs/benchmarks.md).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    #[cfg(feature = "mimalloc")]
    keep_freed_pages();
    common::quiet_panics();
    sbdm_runtime::train::prefer_batch_parallelism();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            {
                e.exit();
            }
            // Usage errors as one line and exit code 1, like every other error.
            eprintln!("sbdm: {}", common::clap_one_line(&e));
            return ExitCode::FAILURE;
        }
    };
    // Any panic left (a bug) is reported in one line too, with exit code 101.
    let result = common::no_panic("running the command", || match cli.command {
        Command::Derive(args) => derive::run(&args),
        Command::Sample(args) => sample::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Translate(args) => translate::run(&args),
        Command::Inpaint(args) => inpaint::run(&args),
        Command::Likelihood(args) => likelihood::run(&args),
        Command::Encode(args) => encode::run(&args),
        Command::Bench(args) => bench::run(&args),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<common::InternalError>() {
            // stdout failed (a panic of `println!`): `sbdm derive vp | head -1`, the
            // reader left, nothing to report; a full disk is reported in one line.
            Some(i) if i.0.contains("failed printing to stdout") => {
                if !i.0.contains("Broken pipe") {
                    let why =
                        i.0.split("failed printing to stdout: ")
                            .nth(1)
                            .unwrap_or("");
                    let why = why.rsplit_once(" at ").map_or(why, |(w, _)| w);
                    eprintln!("sbdm: cannot write to stdout: {why}");
                }
                ExitCode::FAILURE
            }
            Some(_) => {
                eprintln!("sbdm: {e}");
                ExitCode::from(101)
            }
            None => {
                eprintln!("sbdm: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
