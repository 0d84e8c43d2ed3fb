//! `sbdm derive`: a built-in's derivation, or one of an SDE given at run time through
//! the same symbolic core the `sde!` macro uses (so the output is the same).

use anyhow::{anyhow, bail, Result};
use clap::Args;
use sbdm::symbolic::sde::{derive, Diagnostic, Param, Part, SdeSpec};

/// Arguments of `sbdm derive`.
#[derive(Args, Debug)]
pub struct DeriveArgs {
    /// A built-in SDE (`vp`, `subvp`, `ve`, `edm`, `cosine`; `help` lists them).
    /// Omit it to give an SDE with --drift/--diffusion or --mean/--std.
    pub name: Option<String>,
    /// Print LaTeX instead of text.
    #[arg(long)]
    pub latex: bool,
    /// The drift f(x, t), linear in x, e.g. "-0.5*beta*x".
    #[arg(long, allow_hyphen_values = true)]
    pub drift: Option<String>,
    /// The diffusion g(t), e.g. "beta.sqrt()".
    #[arg(long, allow_hyphen_values = true)]
    pub diffusion: Option<String>,
    /// The kernel's mean coefficient a(t), with a(0) = 1.
    #[arg(long, allow_hyphen_values = true)]
    pub mean: Option<String>,
    /// The kernel's std b(t).
    #[arg(long, allow_hyphen_values = true)]
    pub std: Option<String>,
    /// A parameter with its default value, `name=value` (repeatable).
    #[arg(long = "param", value_name = "NAME=VALUE", allow_hyphen_values = true)]
    pub params: Vec<String>,
    /// A `let` binding, `name=expr` (repeatable, in order).
    #[arg(long = "let", value_name = "NAME=EXPR", allow_hyphen_values = true)]
    pub lets: Vec<String>,
    /// The time range `t_min,T`.
    #[arg(long, default_value = "1e-3,1.0", allow_hyphen_values = true)]
    pub time: String,
    /// The name printed in the derivation.
    #[arg(long = "sde-name", default_value = "Sde")]
    pub sde_name: String,
}

fn split_eq(s: &str, what: &str) -> Result<(String, String)> {
    let (n, v) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("--{what} `{s}`: expected NAME=VALUE"))?;
    Ok((n.trim().to_string(), v.trim().to_string()))
}

/// Runs `sbdm derive`.
pub fn run(args: &DeriveArgs) -> Result<()> {
    let given = args.drift.is_some()
        || args.diffusion.is_some()
        || args.mean.is_some()
        || args.std.is_some();
    let derivation = match (&args.name, given) {
        (Some(name), false) => {
            if name == "help" {
                for (n, d) in sbdm::builtin::NAMES {
                    println!("{n:<8} {d}");
                }
                return Ok(());
            }
            sbdm::builtin::derivation(name).ok_or_else(|| {
                let names: Vec<&str> = sbdm::builtin::NAMES.iter().map(|(n, _)| *n).collect();
                anyhow!("unknown SDE `{name}`; the built-ins are: {}", names.join(", "))
            })?
        }
        (Some(name), true) => bail!(
            "give either a built-in SDE name (`{name}`) or --drift/--diffusion/--mean/--std, not both"
        ),
        (None, false) => bail!(
            "name a built-in SDE (e.g. `sbdm derive vp`) or give --drift and --diffusion (or --mean and --std)"
        ),
        (None, true) => {
            let spec = spec_of(args)?;
            derive(&spec)
                .map_err(|diags| anyhow!(describe(&spec, &diags[0])))?
                .derivation
        }
    };
    if args.latex {
        print!("{}", derivation.latex());
    } else {
        print!("{derivation}");
    }
    Ok(())
}

fn spec_of(args: &DeriveArgs) -> Result<SdeSpec> {
    let mut params = Vec::new();
    for p in &args.params {
        let (name, value) = split_eq(p, "param")?;
        params.push(Param {
            name,
            default: Some(value),
        });
    }
    let mut lets = Vec::new();
    for l in &args.lets {
        lets.push(split_eq(l, "let")?);
    }
    let (lo, hi) = args
        .time
        .split_once(',')
        .ok_or_else(|| anyhow!("--time `{}`: expected `t_min,T`", args.time))?;
    Ok(SdeSpec {
        name: args.sde_name.clone(),
        doc: None,
        params,
        time: Some((lo.trim().to_string(), hi.trim().to_string())),
        lets,
        drift: args.drift.clone(),
        diffusion: args.diffusion.clone(),
        mean: args.mean.clone(),
        std: args.std.clone(),
    })
}

/// One line naming the option, the text and the column of the problem.
fn describe(spec: &SdeSpec, d: &Diagnostic) -> String {
    let (opt, src): (String, Option<&str>) = match d.part {
        Part::Decl => ("the SDE".into(), None),
        Part::ParamName(i) | Part::ParamDefault(i) => (
            "--param".into(),
            spec.params.get(i).and_then(|p| p.default.as_deref()),
        ),
        Part::TimeStart => ("--time".into(), spec.time.as_ref().map(|t| t.0.as_str())),
        Part::TimeEnd => ("--time".into(), spec.time.as_ref().map(|t| t.1.as_str())),
        Part::LetName(i) | Part::Let(i) => ("--let".into(), spec.lets.get(i).map(|l| l.1.as_str())),
        Part::Drift => ("--drift".into(), spec.drift.as_deref()),
        Part::Diffusion => ("--diffusion".into(), spec.diffusion.as_deref()),
        Part::Mean => ("--mean".into(), spec.mean.as_deref()),
        Part::Std => ("--std".into(), spec.std.as_deref()),
    };
    match (src, d.range) {
        (Some(src), Some(r)) => {
            let frag = src.get(r.start..r.end.min(src.len())).unwrap_or("");
            format!(
                "{opt} \"{src}\": {} (at column {}: `{frag}`)",
                d.message,
                r.start + 1
            )
        }
        (Some(src), None) => format!("{opt} \"{src}\": {}", d.message),
        _ => format!("{opt}: {}", d.message),
    }
}
