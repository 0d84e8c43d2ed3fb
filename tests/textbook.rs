//! The printed derivations read like the papers: for every built-in (rectified flow
//! included), each coefficient with a paper form (`builtin::PAPER_FORMS`, shown beside the
//! printed forms in docs/derivations.md) equals it (structurally, after
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
    for (name, _, references) in builtin::PAPER_FORMS {
        let sde = builtin::by_name(name).unwrap();
        let d = sbdm_syntax::derive_source(&sde.source().unwrap().text).unwrap();
        failures.extend(check(name, &d, references));
    }
    // Every built-in has paper forms.
    for (name, _) in builtin::NAMES {
        assert!(
            builtin::PAPER_FORMS.iter().any(|(n, _, _)| n == name),
            "{name} has no paper forms"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
