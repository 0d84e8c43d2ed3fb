//! The time shift of a declared SDE, as a new declaration.
//!
//! SD3's shift (Esser et al. 2024) reparameterises time on `[0, 1]` by
//! `τ(t) = s·t/(1 + (s − 1)·t)`, so that more of a grid's steps fall at high noise for
//! `s > 1`: the shifted kernel is `a'(t) = a(τ(t))`, `b'(t) = b(τ(t))`, and the SDE
//! `F'(t) = F(τ)·τ'`, `g'(t) = g(τ)·√τ'` with `τ'(t) = s/(1 + (s − 1)·t)²`. For rectified
//! flow the half log-SNR becomes `λ'(t) = λ(t) − ln s` (the full log-SNR moves by
//! `2 ln s`). Written as a declaration — a parameter `shift`, the lets `tau` and `dtau`,
//! every `t` of the original read as `tau` — the shifted SDE is derived, printed, sampled,
//! trained and stored in checkpoints like any other.

use proc_macro2::{Group, Ident, TokenStream, TokenTree};
use sbdm_symbolic::sde::{Param, SdeSpec};

/// The names the shifted declaration adds.
const SHIFT: &str = "shift";
const TAU: &str = "tau";
const DTAU: &str = "dtau";

/// The declaration `text` shifted by `s > 0` (its parameter `shift`, default `s`): the
/// original's time range must end at `T = 1`, and must not use the names `shift`, `tau`
/// or `dtau`.
///
/// ```
/// let rf = "struct Rf { time = [1e-3, 1.0]; mean = 1.0 - t; std = t; }";
/// let shifted = sbdm_syntax::time_shifted(rf, 3.0).unwrap();
/// assert!(shifted.contains("shift: f64 = 3"));
/// assert!(shifted.contains("mean = 1.0 - tau;"));
/// assert!(sbdm_syntax::time_shifted(rf, 0.0).is_err());
/// ```
pub fn time_shifted(text: &str, s: f64) -> Result<String, String> {
    if !(s.is_finite() && s > 0.0) {
        return Err(format!("the time shift must be finite and > 0, got {s}"));
    }
    let tokens: TokenStream = text
        .parse()
        .map_err(|e| format!("the declaration does not parse: {e}"))?;
    let decl = crate::Decl::parse(tokens).map_err(|e| e.to_string())?;
    let spec = decl.spec();
    let taken = spec
        .params
        .iter()
        .map(|p| p.name.as_str())
        .chain(spec.lets.iter().map(|(n, _)| n.as_str()))
        .find(|n| [SHIFT, TAU, DTAU].contains(n));
    if let Some(name) = taken {
        return Err(format!(
            "{}: `{name}` is a name the time shift adds; rename it to shift this SDE",
            spec.name
        ));
    }
    let (t_min, t_max) = spec
        .time
        .clone()
        .unwrap_or_else(|| ("0.0".into(), "1.0".into()));
    if t_max.trim().parse::<f64>().ok() != Some(1.0) {
        return Err(format!(
            "{}: a time shift maps [0, 1] to itself, but the time range ends at T = {t_max}",
            spec.name
        ));
    }
    let on_tau = |e: &Option<String>| -> Result<Option<String>, String> {
        e.as_deref().map(rename_time).transpose()
    };
    let mut lets = vec![
        (
            TAU.to_string(),
            format!("{SHIFT} * t / (1.0 + ({SHIFT} - 1.0) * t)"),
        ),
        (
            DTAU.to_string(),
            format!("{SHIFT} / (1.0 + ({SHIFT} - 1.0) * t).powi(2)"),
        ),
    ];
    for (name, value) in &spec.lets {
        lets.push((name.clone(), rename_time(value)?));
    }
    let mut params = spec.params.clone();
    params.push(Param {
        name: SHIFT.into(),
        default: Some(format!("{s:?}")),
    });
    let shifted = SdeSpec {
        name: format!("{}Shifted", spec.name),
        doc: Some(format!(
            "{} Shifted in time: t -> shift*t/(1 + (shift - 1)*t).",
            spec.doc.as_deref().unwrap_or(&spec.name).trim_end()
        )),
        params,
        // τ(t_min') = t_min: the shifted SDE covers the same noise levels.
        time: Some((
            format!("({t_min}) / ({SHIFT} - ({SHIFT} - 1.0) * ({t_min}))"),
            t_max,
        )),
        lets,
        drift: on_tau(&spec.drift)?.map(|f| format!("({f}) * {DTAU}")),
        diffusion: on_tau(&spec.diffusion)?.map(|g| format!("({g}) * {DTAU}.sqrt()")),
        mean: on_tau(&spec.mean)?,
        std: on_tau(&spec.std)?,
    };
    Ok(shifted.to_source())
}

/// `expr` with every `t` read as `tau`.
fn rename_time(expr: &str) -> Result<String, String> {
    let tokens: TokenStream = expr
        .parse()
        .map_err(|e| format!("`{expr}` does not parse: {e}"))?;
    Ok(replace_time(tokens).to_string())
}

fn replace_time(tokens: TokenStream) -> TokenStream {
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Ident(i) if i == "t" => TokenTree::Ident(Ident::new(TAU, i.span())),
            TokenTree::Group(g) => {
                let mut inner = Group::new(g.delimiter(), replace_time(g.stream()));
                inner.set_span(g.span());
                TokenTree::Group(inner)
            }
            other => other,
        })
        .collect()
}
