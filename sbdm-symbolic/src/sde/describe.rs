//! The printed derivation: every entry of a [`Derivation`] from a [`Derived`]
//! declaration, each closed form in textbook form and in the declaration's `let` names.

use std::borrow::Cow;

use super::derivation::{Entry, Method};
use super::derive::{Derived, Given};
use super::recipe::{Plan, Recipe};
use crate::Expr;

impl Derived {
    /// The closed-form coefficients as the derivation prints them: in textbook form and
    /// in the `let` names (see [`Expr::textbook`]), by key (`F`, `g2`, `int_F`, `a`,
    /// `b2`, `b`, `sigma`, `log_snr`, `dlog_snr`, `t_of_log_snr`).
    pub fn textbook_forms(&self) -> Vec<(&'static str, Expr)> {
        let show = Show::of(self);
        let c = &self.coefs;
        let sigma = match (&c.a, &c.b) {
            (Some(a), Some(b)) => Some(b / a),
            _ => None,
        };
        [
            ("F", Some(&c.f)),
            ("g2", Some(&c.g2)),
            ("int_F", c.int_f.as_ref()),
            ("a", c.a.as_ref()),
            ("b2", c.b2.as_ref()),
            ("b", c.b.as_ref()),
            ("sigma", sigma.as_ref()),
            ("log_snr", c.log_snr.as_ref()),
            ("dlog_snr", c.dlog_snr.as_ref()),
            ("t_of_log_snr", c.t_of_log_snr.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, e)| e.map(|e| (k, show.form(e))))
        .collect()
    }
}

fn given(key: &'static str, label: &'static str, e: &Expr, show: &Show) -> Entry {
    let e = &show.form(e);
    Entry {
        key: Cow::Borrowed(key),
        label: Cow::Borrowed(label),
        text: Cow::Owned(e.to_string()),
        latex: Cow::Owned(format!("{} &= {}", latex_label(label), e.to_latex())),
        method: Method::Given,
    }
}

/// How derived expressions are shown: in textbook form ([`Expr::textbook`], `t > 0` on
/// a valid time range) and in terms of the declared `let` names where their expansions
/// occur (`β(t)`, not `beta_min + t*(beta_max - beta_min)`). For printing only: the
/// generated code evaluates the verified coefficients themselves.
struct Show {
    /// The composite `let`s, latest first (later ones may contain earlier ones).
    lets: Vec<LetForm>,
    /// `t` and the params whose default values are positive (a display assumption:
    /// the derivation's checks run at the defaults).
    positive: Vec<String>,
    /// The kernel's `a(t)` and `b(t)`, positive on the time range (the derivation checks
    /// it on its grid): `ln(b²)/2` shows as `ln(b)`.
    positive_exprs: Vec<Expr>,
}

/// A `let` as the forms it is recognised in, prepared once per derivation.
struct LetForm {
    /// The symbol shown.
    name: Expr,
    /// Subtrees replaced by the name (or its square): the value, its square and its
    /// textbook form.
    patterns: Vec<(Expr, Expr)>,
    /// The value, for its numeric multiples.
    value: Expr,
    /// The value expanded (what a multiple is compared with).
    expanded: Expr,
}

impl Show {
    /// How `d`'s expressions are shown.
    fn of(d: &Derived) -> Show {
        let positive: Vec<String> = std::iter::once("t".to_string())
            .chain(
                d.params
                    .iter()
                    .filter(|(_, v)| *v > 0.0)
                    .map(|(n, _)| n.clone()),
            )
            .collect();
        let positive_names: Vec<&str> = positive.iter().map(String::as_str).collect();
        let lets = d
            .lets
            .iter()
            .rev()
            // Composite values only: a `let c = 2.0` must not rename every 2.
            .filter(|(_, value)| {
                !matches!(
                    value.node(),
                    crate::Node::Num(_) | crate::Node::Sym(_) | crate::Node::Const(_)
                )
            })
            .map(|(name, value)| {
                let name = Expr::sym(name);
                LetForm {
                    patterns: vec![
                        (Expr::powi(value.clone(), 2), Expr::powi(name.clone(), 2)),
                        (value.clone(), name.clone()),
                        (value.textbook("t", &positive_names), name.clone()),
                    ],
                    name,
                    value: value.clone(),
                    expanded: value.expand(),
                }
            })
            .collect();
        let positive_exprs = [&d.coefs.a, &d.coefs.b]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        Show {
            lets,
            positive,
            positive_exprs,
        }
    }

    fn form(&self, e: &Expr) -> Expr {
        let positive: Vec<&str> = self.positive.iter().map(String::as_str).collect();
        let mut out = e.textbook_with("t", &positive, &self.positive_exprs);
        for l in &self.lets {
            for (v, n) in &l.patterns {
                out = out.replace(v, n);
            }
            out = multiples_of(&out, l);
        }
        out
    }
}

/// Every subexpression of `e` that is a numeric multiple of the let's value (equal
/// after expanding), as that multiple of its name: `-(β₀t + (β₁-β₀)t²/2)/2` is
/// `-int_beta/2`.
fn multiples_of(e: &Expr, l: &LetForm) -> Expr {
    let (value, target, name) = (&l.value, &l.expanded, &l.name);
    let multiple = |x: &Expr| -> Option<f64> {
        // Expanding is the cost: only nodes of a size a let can have.
        if !matches!(x.node(), crate::Node::Add(_) | crate::Node::Mul(_))
            || x.ops() > 2 * value.ops() + 8
        {
            return None;
        }
        let mine = x.expand();
        if mine.terms().len() != target.terms().len() {
            return None;
        }
        // The ratio of the coefficients of one monomial (terms sort by coefficient too).
        let (c_mine, rest) = mine.terms()[0].split_coeff();
        let c_target = target
            .terms()
            .iter()
            .map(Expr::split_coeff)
            .find(|(_, r)| *r == rest)?
            .0;
        let c = c_mine / c_target;
        (c.is_finite() && c != 0.0 && (mine - c * target).expand().is_zero()).then_some(c)
    };
    fn walk(e: &Expr, multiple: &dyn Fn(&Expr) -> Option<f64>, name: &Expr) -> Expr {
        if let Some(c) = multiple(e) {
            return c * name;
        }
        let children = e.children();
        if children.is_empty() {
            return e.clone();
        }
        e.with_children(children.iter().map(|c| walk(c, multiple, name)).collect())
    }
    walk(e, &multiple, name)
}

fn closed(key: &'static str, label: &'static str, latex_lhs: &str, e: &Expr, show: &Show) -> Entry {
    let e = &show.form(e);
    Entry {
        key: Cow::Borrowed(key),
        label: Cow::Borrowed(label),
        text: Cow::Owned(e.to_string()),
        latex: Cow::Owned(format!("{} &= {}", latex_label(latex_lhs), e.to_latex())),
        method: Method::ClosedForm,
    }
}

fn numeric_entry(key: &'static str, label: &'static str, latex_lhs: &str, recipe: Recipe) -> Entry {
    Entry {
        key: Cow::Borrowed(key),
        label: Cow::Borrowed(label),
        text: Cow::Borrowed(recipe.text()),
        latex: Cow::Owned(format!("{latex_lhs} &= {}", recipe.latex())),
        method: Method::Numeric,
    }
}

fn latex_label(label: &str) -> String {
    label
        .replace("∂f/∂x", "\\partial f / \\partial x")
        .replace("d ln a/dt", "\\frac{d \\ln a}{dt}")
        .replace("σ", "\\sigma")
        .replace("λ", "\\lambda")
}

pub(super) fn header(
    lets: &[(String, Expr)],
    params: &[(String, f64)],
    t0: f64,
    t1: f64,
) -> Vec<Cow<'static, str>> {
    let mut h = Vec::new();
    if !params.is_empty() {
        let ps: Vec<String> = params.iter().map(|(n, v)| format!("{n} = {v}")).collect();
        h.push(Cow::Owned(format!("params: {}", ps.join(", "))));
    }
    h.push(Cow::Owned(format!("time:   t in [{t0}, {t1}]")));
    for (n, e) in lets {
        h.push(Cow::Owned(format!("let {n} = {e}")));
    }
    h
}

/// Every entry of the derivation: what was given, then each coefficient (closed form
/// or recipe), the kernel score, the reverse SDE, the PF-ODE and the prior.
pub(super) fn describe(d: &Derived, given_forms: &Given, t1: f64) -> Vec<Entry> {
    let show = &Show::of(d);
    let mut entries = Vec::new();
    let c = &d.coefs;
    for (key, label, e) in [
        ("drift", "f(x, t)", &given_forms.drift),
        ("diffusion", "g(t)", &given_forms.diffusion),
        ("mean", "a(t)", &given_forms.mean),
        ("std", "b(t)", &given_forms.std),
    ] {
        if let Some(e) = e {
            entries.push(given(key, label, e, show));
        }
    }
    if given_forms.drift.is_some() {
        entries.push(closed("F", "F(t) = ∂f/∂x", "F(t)", &c.f, show));
        entries.push(closed("g2", "g(t)^2", "g(t)^2", &c.g2, show));
    } else {
        entries.push(closed("F", "F(t) = d ln a/dt", "F(t)", &c.f, show));
        entries.push(closed(
            "g2",
            "g(t)^2 = d(b^2)/dt - 2 F b^2",
            "g(t)^2",
            &c.g2,
            show,
        ));
    }
    let b = d.bind(&[]);
    match c.int_f_plan() {
        Plan::Closed(i) => entries.push(closed(
            "int_F",
            "∫_0^t F(s) ds",
            "\\int_0^t F(s)\\,ds",
            i,
            show,
        )),
        Plan::Numeric(r) if c.a.is_none() => entries.push(numeric_entry(
            "int_F",
            "∫_0^t F(s) ds",
            "\\int_0^t F(s)\\,ds",
            r,
        )),
        Plan::Numeric(_) => {}
    }
    match c.a_plan() {
        Plan::Closed(a) => {
            if c.int_f.is_some() {
                entries.push(closed("a", "a(t) = exp(∫F)", "a(t)", a, show));
            }
        }
        Plan::Numeric(r) => entries.push(numeric_entry("a", "a(t) = exp(∫F)", "a(t)", r)),
    }
    match c.b2_plan() {
        Plan::Closed(b2) => entries.push(closed("b2", "b(t)^2", "b(t)^2", b2, show)),
        Plan::Numeric(r) => entries.push(numeric_entry("b2", "b(t)^2", "b(t)^2", r)),
    }
    if let (Some(a), Some(bb)) = (&c.a, &c.b) {
        if c.int_f.is_some() || !entries.iter().any(|e| e.key == "std") {
            entries.push(closed("b", "b(t)", "b(t)", bb, show));
        }
        entries.push(closed("sigma", "σ(t) = b/a", "σ(t) = b/a", &(bb / a), show));
    }
    let rest = [
        (
            "log_snr",
            "λ(t) = ln(a/b)",
            "λ(t)",
            "\\lambda(t)",
            c.log_snr_plan(),
        ),
        (
            "dlog_snr",
            "dλ/dt = -g^2/(2 b^2)",
            "dλ/dt",
            "\\frac{d\\lambda}{dt}",
            c.dlog_snr_plan(),
        ),
        (
            "t_of_log_snr",
            "t(λ)",
            "t(λ)",
            "t(\\lambda)",
            c.t_of_log_snr_plan(),
        ),
    ];
    for (key, label, closed_lhs, numeric_lhs, plan) in rest {
        entries.push(match plan {
            Plan::Closed(e) => closed(key, label, closed_lhs, e, show),
            Plan::Numeric(r) => numeric_entry(key, label, numeric_lhs, r),
        });
    }
    entries.push(Entry {
        key: Cow::Borrowed("score"),
        label: Cow::Borrowed("∇ log p_0t(x_t | x_0)"),
        text: Cow::Borrowed("-(x_t - a(t)*x_0) / b(t)^2 = -eps / b(t)"),
        latex: Cow::Borrowed(
            "\\nabla_{x_t} \\log p_{0t}(x_t \\mid x_0) &= -\\frac{x_t - a(t)\\,x_0}{b(t)^2} = -\\frac{\\epsilon}{b(t)}",
        ),
        method: Method::ClosedForm,
    });
    // The drifts as expressions in x and a stand-in for the score, so that their
    // coefficients fold (−½·(2t) is −t) and print in textbook form.
    let (score_text, score_latex) = ("∇log p_t(x)", "\\nabla_x \\log p_t(x)");
    // A stand-in symbol that sorts after every name, so the score prints last.
    let stand_in = "~score";
    let score = Expr::sym(stand_in);
    let drift = |score_coef: Expr| {
        let e = Expr::add([
            show.form(&c.f) * Expr::sym("x"),
            show.form(&score_coef) * &score,
        ]);
        (
            e.to_string().replace(stand_in, score_text),
            e.to_latex().replace(&score.to_latex(), score_latex),
        )
    };
    let (reverse, reverse_latex) = drift(-&c.g2);
    entries.push(Entry {
        key: Cow::Borrowed("reverse_sde"),
        label: Cow::Borrowed("reverse SDE"),
        text: Cow::Owned(format!("dx = [{reverse}] dt + g(t) dw̄")),
        latex: Cow::Owned(format!(
            "dx &= \\left[{reverse_latex}\\right] dt + g(t)\\, d\\bar w"
        )),
        method: Method::ClosedForm,
    });
    let (pf, pf_latex) = drift(-0.5 * &c.g2);
    entries.push(Entry {
        key: Cow::Borrowed("pf_ode"),
        label: Cow::Borrowed("probability-flow ODE"),
        text: Cow::Owned(format!("dx/dt = {pf}")),
        latex: Cow::Owned(format!("\\frac{{dx}}{{dt}} &= {pf_latex}")),
        method: Method::ClosedForm,
    });
    let bt = b.std(t1);
    entries.push(Entry {
        key: Cow::Borrowed("prior"),
        label: Cow::Borrowed("prior p_T"),
        text: Cow::Owned(format!(
            "N(0, b(T)^2 I), b(T) = {} at the default params; log p_T(x) = -|x|^2/(2 b(T)^2) - (d/2) ln(2π b(T)^2)",
            fmt_short(bt)
        )),
        latex: Cow::Owned(format!(
            "p_T &= \\mathcal{{N}}(0, b(T)^2 I),\\quad b(T) = {} \\text{{ at the default params}}",
            fmt_short(bt)
        )),
        method: if c.b.is_some() {
            Method::ClosedForm
        } else {
            Method::Numeric
        },
    });
    entries
}

fn fmt_short(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s
    }
}
