//! `sbdm derive`: a built-in's derivation, or one of an SDE given at run time (a `.sde`
//! file or flags) through the same symbolic core the `sde!` macro uses (so the output is
//! the same).

use anyhow::{anyhow, bail, Result};
use clap::Args;

use crate::sde_arg::{self, SdeFlags};

/// Arguments of `sbdm derive`.
#[derive(Args, Debug)]
pub struct DeriveArgs {
    /// A built-in SDE (`vp`, `subvp`, `ve`, `edm`, `cosine`, `rf`, `trigflow`; `help` lists them).
    /// Omit it to give an SDE with --sde FILE.sde, --drift/--diffusion or --mean/--std.
    pub name: Option<String>,
    /// A declaration file: exactly what goes between the braces of `sde! { .. }`.
    #[arg(long, value_name = "FILE.sde")]
    pub sde: Option<String>,
    /// Print LaTeX instead of text.
    #[arg(long)]
    pub latex: bool,
    /// The SDE declared inline.
    #[command(flatten)]
    pub flags: SdeFlags,
    /// A parameter of the SDE declared inline with its default value, `name=value`
    /// (repeatable; the same as --sde-param).
    #[arg(long = "param", value_name = "NAME=VALUE", allow_hyphen_values = true)]
    pub declared_params: Vec<String>,
}

/// Runs `sbdm derive`: a panic in the symbolic core (a bug) is a one-line error.
pub fn run(args: &DeriveArgs) -> Result<()> {
    crate::common::no_panic("deriving the SDE", || run_guarded(args))
}

/// [`run`], unguarded.
fn run_guarded(args: &DeriveArgs) -> Result<()> {
    let given = args.flags.declares();
    let derivation = match (&args.name, &args.sde, given) {
        (Some(name), None, false) => {
            if name == "help" {
                for (n, d) in sbdm::builtin::NAMES {
                    println!("{n:<8} {d}");
                }
                return Ok(());
            }
            sbdm::builtin::derivation(name).ok_or_else(|| {
                let names: Vec<&str> = sbdm::builtin::NAMES.iter().map(|(n, _)| *n).collect();
                anyhow!(
                    "unknown SDE `{name}`; the built-ins are: {}",
                    names.join(", ")
                )
            })?
        }
        (Some(name), _, _) => bail!(
            "give either a built-in SDE name (`{name}`) or --sde FILE.sde or \
             --drift/--diffusion/--mean/--std, not two"
        ),
        (None, None, false) => bail!(
            "name a built-in SDE (e.g. `sbdm derive vp`), give --sde FILE.sde, or give \
             --drift and --diffusion (or --mean and --std)"
        ),
        (None, Some(_), _) if !args.declared_params.is_empty() => {
            bail!("--param declares a parameter of an SDE given inline; set a file's with --sde-param")
        }
        (None, Some(file), _) => sde_arg::resolve(Some(file), &args.flags)?
            .and_then(|c| c.derivation.or_else(|| sbdm::builtin::derivation(&c.name)))
            .ok_or_else(|| anyhow!("--sde {file}: a discrete table has no derivation"))?,
        (None, None, true) => sde_arg::inline(&args.flags, &args.declared_params)?
            .derivation
            .ok_or_else(|| anyhow!("the SDE was not derived"))?,
    };
    let text = if args.latex {
        derivation.latex()
    } else {
        derivation.to_string()
    };
    // One trailing newline, so the shell prompt starts on a line of its own.
    println!("{}", text.trim_end_matches('\n'));
    Ok(())
}
