//! The SDE a command runs on: `--sde NAME` (a built-in or a discrete table), `--sde
//! FILE.sde` (a declaration in the `sde!` language: exactly what goes between the macro's
//! braces), or the declaration's parts as flags (`--drift`/`--diffusion` or
//! `--mean`/`--std`, `--let`, `--time`, `--sde-param`, `--sde-name`). Files and flags are
//! derived at run time by the same symbolic core the macro uses ([`DynSde`]).

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use sbdm::symbolic::sde::{derive, Derivation, Diagnostic, Param, Part, SdeSpec};
use sbdm_runtime::sde::resolution_shift::ResolutionShift;
use sbdm_runtime::sde::{named, DynSde};
use sbdm_runtime::{GaussianKernel, Sde};

use crate::common::{no_panic, one_line};

/// An SDE declared with flags, and parameter values for a named or file SDE.
#[derive(Args, Debug, Default, Clone)]
pub struct SdeFlags {
    /// Declare the SDE inline: the drift f(x, t), linear in x, e.g. "-0.5*beta*x".
    #[arg(long, allow_hyphen_values = true, help_heading = "SDE declared inline")]
    pub drift: Option<String>,
    /// The diffusion g(t), e.g. "beta.sqrt()".
    #[arg(long, allow_hyphen_values = true, help_heading = "SDE declared inline")]
    pub diffusion: Option<String>,
    /// The kernel's mean coefficient a(t), with a(0) = 1 (instead of drift/diffusion).
    #[arg(long, allow_hyphen_values = true, help_heading = "SDE declared inline")]
    pub mean: Option<String>,
    /// The kernel's std b(t).
    #[arg(long, allow_hyphen_values = true, help_heading = "SDE declared inline")]
    pub std: Option<String>,
    /// A `let` binding, `name=expr` (repeatable, in order).
    #[arg(
        long = "let",
        value_name = "NAME=EXPR",
        allow_hyphen_values = true,
        help_heading = "SDE declared inline"
    )]
    pub lets: Vec<String>,
    /// The time range `t_min,T` [default: 1e-3,1.0].
    #[arg(long, allow_hyphen_values = true, help_heading = "SDE declared inline")]
    pub time: Option<String>,
    /// The name of the SDE declared inline [default: Sde].
    #[arg(long = "sde-name", help_heading = "SDE declared inline")]
    pub sde_name: Option<String>,
    /// A parameter's value, `name=value` (repeatable): declares it for an SDE given
    /// inline, sets it for one given by --sde (a built-in or a file).
    #[arg(
        long = "sde-param",
        value_name = "NAME=VALUE",
        allow_hyphen_values = true,
        help_heading = "SDE declared inline"
    )]
    pub params: Vec<String>,
    /// Shift the SDE in time, t -> S*t/(1 + (S - 1)*t) (SD3's shift; S > 1 spends more of
    /// the steps at high noise): a new declaration with the parameter `shift`, derived
    /// again. Needs a declared SDE whose time range ends at 1.
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    pub shift: Option<f64>,
    /// The shift given by its logarithm, S = exp(MU) (Flux's and diffusers' `mu`).
    #[arg(
        long,
        value_name = "MU",
        allow_hyphen_values = true,
        conflicts_with_all = ["shift", "shift_tokens"]
    )]
    pub shift_mu: Option<f64>,
    /// The resolution-dependent shift of an image of N tokens (latent patches): MU
    /// linear in N, 0.5 at 256 tokens and 1.15 at 4096 (Flux's rule), S = exp(MU).
    #[arg(
        long,
        value_name = "N",
        allow_hyphen_values = true,
        conflicts_with = "shift"
    )]
    pub shift_tokens: Option<f64>,
}

impl SdeFlags {
    /// The time shift asked for by --shift, --shift-mu or --shift-tokens, with the flag
    /// that gave it.
    fn shift(&self) -> Result<Option<(f64, String)>> {
        Ok(match (self.shift, self.shift_mu, self.shift_tokens) {
            (Some(s), _, _) => Some((s, format!("--shift {s}"))),
            (_, Some(mu), _) => Some((mu.exp(), format!("--shift-mu {mu}"))),
            (_, _, Some(n)) => {
                let s = ResolutionShift::default()
                    .shift(n)
                    .map_err(|e| anyhow!("--shift-tokens: {}", one_line(e)))?;
                Some((s, format!("--shift-tokens {n}")))
            }
            _ => None,
        })
    }
}

/// The SDE a command runs on, resolved.
pub struct ChosenSde {
    /// The name to print: the built-in's CLI name or the declared name.
    pub name: String,
    /// The SDE.
    pub sde: Arc<dyn GaussianKernel>,
    /// Its derivation, where it was derived here (files and flags).
    pub derivation: Option<Derivation>,
}

fn split_eq(s: &str, flag: &str) -> Result<(String, String)> {
    let (n, v) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("{flag} `{s}`: expected NAME=VALUE"))?;
    Ok((n.trim().to_string(), v.trim().to_string()))
}

impl SdeFlags {
    /// Whether the flags declare an SDE (a drift, diffusion, mean or std is given).
    pub fn declares(&self) -> bool {
        self.drift.is_some()
            || self.diffusion.is_some()
            || self.mean.is_some()
            || self.std.is_some()
    }

    /// The declaration the flags give (`--sde-param` and `extra_params` declare the
    /// parameters with their values).
    pub fn spec(&self, extra_params: &[String]) -> Result<SdeSpec> {
        let mut params = Vec::new();
        for p in self.params.iter().chain(extra_params) {
            let (name, value) = split_eq(p, "--sde-param")?;
            params.push(Param {
                name,
                default: Some(value),
            });
        }
        let lets = self
            .lets
            .iter()
            .map(|l| split_eq(l, "--let"))
            .collect::<Result<Vec<_>>>()?;
        let time = self.time.as_deref().unwrap_or("1e-3,1.0");
        let (lo, hi) = time
            .split_once(',')
            .ok_or_else(|| anyhow!("--time `{time}`: expected `t_min,T`"))?;
        Ok(SdeSpec {
            name: self.sde_name.clone().unwrap_or_else(|| "Sde".into()),
            doc: None,
            params,
            time: Some((lo.trim().to_string(), hi.trim().to_string())),
            lets,
            drift: self.drift.clone(),
            diffusion: self.diffusion.clone(),
            mean: self.mean.clone(),
            std: self.std.clone(),
        })
    }

    /// `--sde-param` as values for an SDE given by `--sde`.
    fn values(&self) -> Result<Vec<(String, f64)>> {
        self.params
            .iter()
            .map(|p| {
                let (name, v) = split_eq(p, "--sde-param")?;
                let value: f64 = v
                    .parse()
                    .map_err(|_| anyhow!("--sde-param `{p}`: `{v}` is not a number"))?;
                Ok((name, value))
            })
            .collect()
    }

    /// The flags that only make sense for an inline declaration, if any was given.
    fn inline_only(&self) -> Option<&'static str> {
        [
            (!self.lets.is_empty(), "--let"),
            (self.time.is_some(), "--time"),
            (self.sde_name.is_some(), "--sde-name"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }
}

/// Whether `--sde` names a declaration file rather than a known SDE.
fn is_file(sde: &str) -> bool {
    sde.ends_with(".sde") || (named::entry(sde).is_none() && Path::new(sde).is_file())
}

/// The SDE of `--sde` and the inline flags; `None` when neither is given. A panic in
/// the symbolic core (a bug) is a one-line error.
pub fn resolve(sde: Option<&str>, flags: &SdeFlags) -> Result<Option<ChosenSde>> {
    no_panic("deriving the SDE", || resolve_guarded(sde, flags))
}

/// [`resolve`], unguarded.
fn resolve_guarded(sde: Option<&str>, flags: &SdeFlags) -> Result<Option<ChosenSde>> {
    let chosen = resolve_unshifted(sde, flags)?;
    let Some((shift, flag)) = flags.shift()? else {
        return Ok(chosen);
    };
    let flag_name = flag.split(' ').next().unwrap_or("--shift");
    let chosen = chosen.ok_or_else(|| {
        anyhow!("{flag_name} needs an SDE: --sde NAME|FILE.sde, or one declared inline")
    })?;
    let source = chosen.sde.source().ok_or_else(|| {
        anyhow!(
            "{flag_name}: `{}` is a table, not a declaration; a time shift needs a declared SDE",
            chosen.name
        )
    })?;
    let dynamic =
        DynSde::time_shifted(&source, shift).map_err(|e| anyhow!("{flag}: {}", one_line(e)))?;
    Ok(Some(ChosenSde {
        name: format!("{} (shift {shift})", chosen.name),
        derivation: Some(dynamic.derivation().clone()),
        sde: Arc::new(dynamic),
    }))
}

/// [`resolve`] before `--shift`.
fn resolve_unshifted(sde: Option<&str>, flags: &SdeFlags) -> Result<Option<ChosenSde>> {
    if flags.declares() {
        if let Some(sde) = sde {
            bail!("give either --sde `{sde}` or an SDE declared with --drift/--diffusion or --mean/--std, not both");
        }
        return inline_guarded(flags, &[]).map(Some);
    }
    if let Some(flag) = flags.inline_only() {
        bail!("{flag} belongs to an SDE declared inline: give --drift and --diffusion (or --mean and --std) too");
    }
    let Some(sde) = sde else {
        if !flags.params.is_empty() {
            bail!("--sde-param needs an SDE: --sde NAME|FILE.sde, or one declared inline");
        }
        return Ok(None);
    };
    let values = flags.values()?;
    if is_file(sde) {
        let text = std::fs::read_to_string(sde).map_err(|e| anyhow!("{sde}: {e}"))?;
        let parsed = DynSde::parse(&text).map_err(|e| anyhow!("{sde}:{}", one_line(e)))?;
        let dynamic = parsed
            .with_params(&values)
            .map_err(|e| anyhow!("{sde}: {}", one_line(e)))?;
        return Ok(Some(ChosenSde {
            name: dynamic.name().to_string(),
            derivation: Some(dynamic.derivation().clone()),
            sde: Arc::new(dynamic),
        }));
    }
    let known = named::by_name(sde).map_err(one_line)?;
    let name = named::entry(sde).map_or(sde, |e| e.name).to_string();
    if values.is_empty() {
        return Ok(Some(ChosenSde {
            name,
            sde: Arc::from(known),
            derivation: None,
        }));
    }
    // A built-in with other parameter values: derived again from its declaration.
    let source = known
        .source()
        .ok_or_else(|| anyhow!("--sde-param: the SDE `{name}` has no parameters to set"))?;
    let dynamic = DynSde::from_source(&source)
        .and_then(|d| d.with_params(&values))
        .map_err(one_line)?;
    Ok(Some(ChosenSde {
        name,
        derivation: Some(dynamic.derivation().clone()),
        sde: Arc::new(dynamic),
    }))
}

/// The SDE declared by the flags. A panic in the symbolic core (a bug) is a one-line
/// error.
pub fn inline(flags: &SdeFlags, extra_params: &[String]) -> Result<ChosenSde> {
    no_panic("deriving the SDE", || inline_guarded(flags, extra_params))
}

/// [`inline`], unguarded.
fn inline_guarded(flags: &SdeFlags, extra_params: &[String]) -> Result<ChosenSde> {
    let spec = flags.spec(extra_params)?;
    let derived = derive(&spec).map_err(|diags| anyhow!(describe(&spec, &diags[0])))?;
    let dynamic = DynSde::new(derived, &spec.to_source());
    Ok(ChosenSde {
        name: dynamic.name().to_string(),
        derivation: Some(dynamic.derivation().clone()),
        sde: Arc::new(dynamic),
    })
}

/// One line naming the flag, the text and the column of the problem.
fn describe(spec: &SdeSpec, d: &Diagnostic) -> String {
    let (flag, src): (&str, Option<&str>) = match d.part {
        Part::Decl => ("the SDE", None),
        Part::ParamName(i) | Part::ParamDefault(i) => (
            "--sde-param",
            spec.params.get(i).and_then(|p| p.default.as_deref()),
        ),
        Part::TimeStart => ("--time", spec.time.as_ref().map(|t| t.0.as_str())),
        Part::TimeEnd => ("--time", spec.time.as_ref().map(|t| t.1.as_str())),
        Part::LetName(i) | Part::Let(i) => ("--let", spec.lets.get(i).map(|l| l.1.as_str())),
        Part::Drift => ("--drift", spec.drift.as_deref()),
        Part::Diffusion => ("--diffusion", spec.diffusion.as_deref()),
        Part::Mean => ("--mean", spec.mean.as_deref()),
        Part::Std => ("--std", spec.std.as_deref()),
    };
    match (src, d.range) {
        (Some(src), Some(r)) => {
            let frag = src.get(r.start..r.end.min(src.len())).unwrap_or("");
            format!(
                "{flag} \"{src}\": {} (at column {}: `{frag}`)",
                d.message,
                r.start + 1
            )
        }
        (Some(src), None) => format!("{flag} \"{src}\": {}", d.message),
        _ => format!("{flag}: {}", d.message),
    }
}
