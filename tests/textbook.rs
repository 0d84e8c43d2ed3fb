//! The printed derivations read like the papers: for every built-in and for rectified
//! flow, each coefficient with a reference form below equals it (structurally, after
//! substituting the `let`s and expanding both: the canonical form) and has no more
//! operations than it. References: score_sde (Song et al. 2021) for VP, sub-VP and VE;
//! DPM-Solver (Lu et al. 2022) for the VP's t(λ); EDM (Karras et al. 2022); Nichol &
//! Dhariwal (2021) for the cosine schedule; rectified flow (Liu et al. 2022) and flow
//! matching (Lipman et al. 2022) for a = 1 - t, b = t.

use sbdm::symbolic::parse::{parse, Scope};
use sbdm::symbolic::sde::Derived;
use sbdm::symbolic::Expr;
use sbdm_runtime::sde::builtin;
use sbdm_runtime::Sde;

/// Each SDE's reference forms, by coefficient key, in the `sde!` expression language
/// (`let` names and `lambda` allowed).
const REFERENCES: &[(&str, &[(&str, &str)])] = &[
    (
        "vp",
        &[
            ("F", "-0.5 * beta"),
            ("g2", "beta"),
            (
                "int_F",
                "-0.25 * t * t * (beta_max - beta_min) - 0.5 * t * beta_min",
            ),
            (
                "a",
                "(-0.25 * t * t * (beta_max - beta_min) - 0.5 * t * beta_min).exp()",
            ),
            (
                "b2",
                "1.0 - (-0.5 * t * t * (beta_max - beta_min) - t * beta_min).exp()",
            ),
            (
                "sigma",
                "((0.5 * t * t * (beta_max - beta_min) + t * beta_min).exp() - 1.0).sqrt()",
            ),
            (
                "t_of_log_snr",
                "2.0 * (1.0 + (-2.0 * lambda).exp()).ln() / (beta_min + (beta_min * beta_min \
                 + 2.0 * (beta_max - beta_min) * (1.0 + (-2.0 * lambda).exp()).ln()).sqrt())",
            ),
        ],
    ),
    (
        "subvp",
        &[
            ("F", "-0.5 * beta"),
            ("g2", "beta * (1.0 - (-2.0 * int_beta).exp())"),
            ("int_F", "-0.5 * int_beta"),
            ("a", "(-0.5 * int_beta).exp()"),
        ],
    ),
    (
        "ve",
        &[
            ("g2", "2.0 * sigma * sigma * (sigma_max / sigma_min).ln()"),
            ("b2", "sigma * sigma"),
            ("sigma", "sigma"),
            (
                "log_snr",
                "-sigma_min.ln() - t * (sigma_max / sigma_min).ln()",
            ),
            ("dlog_snr", "-(sigma_max / sigma_min).ln()"),
        ],
    ),
    (
        "edm",
        &[
            ("g2", "2.0 * t"),
            ("b2", "t * t"),
            ("sigma", "t"),
            ("log_snr", "-t.ln()"),
            ("dlog_snr", "-1.0 / t"),
            ("t_of_log_snr", "(-lambda).exp()"),
        ],
    ),
    (
        "cosine",
        &[
            ("F", "-0.5 * PI * phi.tan() / (1.0 + s)"),
            ("g2", "PI * phi.tan() / (1.0 + s)"),
            ("b2", "1.0 - phi.cos().powi(2) / phi0.cos().powi(2)"),
        ],
    ),
];

/// Rectified flow / conditional optimal-transport flow matching: a = 1 - t, b = t.
const RECTIFIED_FLOW: &str = "struct RectifiedFlow {
    time = [1e-3, 0.999];
    mean = 1.0 - t;
    std = t;
}";

const RECTIFIED_FLOW_REFERENCES: &[(&str, &str)] = &[
    ("F", "-1.0 / (1.0 - t)"),
    ("g2", "2.0 * t / (1.0 - t)"),
    ("sigma", "t / (1.0 - t)"),
    ("log_snr", "((1.0 - t) / t).ln()"),
    ("dlog_snr", "-1.0 / (t * (1.0 - t))"),
    ("t_of_log_snr", "1.0 / (1.0 + lambda.exp())"),
];

/// `text` lowered with `t`, `lambda`, the params and the lets as symbols.
fn lower(text: &str, d: &Derived) -> Expr {
    let mut scope = Scope::new();
    for name in ["t", "lambda"]
        .into_iter()
        .chain(d.params.iter().map(|(n, _)| n.as_str()))
        .chain(d.lets.iter().map(|(n, _)| n.as_str()))
    {
        scope.insert_symbol(name);
    }
    parse(text)
        .unwrap_or_else(|e| panic!("{text}: {e:?}"))
        .lower(&scope)
        .unwrap_or_else(|e| panic!("{text}: {e:?}"))
}

/// The canonical form: lets substituted (latest first), expanded.
fn canonical(e: &Expr, d: &Derived) -> Expr {
    let mut e = e.clone();
    for (name, value) in d.lets.iter().rev() {
        e = e.subs(name, value);
    }
    e.expand()
}

fn check(name: &str, d: &Derived, references: &[(&str, &str)]) -> Vec<String> {
    let shown = d.textbook_forms();
    let mut failures = Vec::new();
    for (key, reference) in references {
        let Some((_, ours)) = shown.iter().find(|(k, _)| k == key) else {
            failures.push(format!("{name} {key}: not in closed form"));
            continue;
        };
        let theirs = lower(reference, d);
        if canonical(ours, d) != canonical(&theirs, d) {
            failures.push(format!("{name} {key}: {ours} is not {theirs}"));
        } else if ours.ops() > theirs.ops() {
            failures.push(format!(
                "{name} {key}: {ours} has {} operations, the reference {theirs} {}",
                ours.ops(),
                theirs.ops()
            ));
        }
    }
    failures
}

#[test]
fn printed_coefficients_are_the_papers_forms() {
    let mut failures = Vec::new();
    for (name, references) in REFERENCES {
        let sde = builtin::by_name(name).unwrap();
        let d = sbdm_syntax::derive_source(&sde.source().unwrap().text).unwrap();
        failures.extend(check(name, &d, references));
    }
    let rf = sbdm_syntax::derive_source(RECTIFIED_FLOW).unwrap();
    failures.extend(check("rectified flow", &rf, RECTIFIED_FLOW_REFERENCES));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
