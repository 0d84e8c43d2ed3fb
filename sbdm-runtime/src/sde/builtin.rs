//! The built-in SDEs, each declared with the `sde!` macro itself.

use crate::sde;

sde! {
    /// Variance-preserving SDE with a linear noise schedule (Song et al. 2021).
    pub struct VpSde {
        params { beta_min: f64 = 0.1, beta_max: f64 = 20.0 }
        time = [1e-3, 1.0];
        let beta = beta_min + t * (beta_max - beta_min);
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

sde! {
    /// Sub-variance-preserving SDE (Song et al. 2021): the VP drift with a smaller diffusion.
    pub struct SubVpSde {
        params { beta_min: f64 = 0.1, beta_max: f64 = 20.0 }
        time = [1e-3, 1.0];
        let beta = beta_min + t * (beta_max - beta_min);
        let int_beta = beta_min * t + 0.5 * t * t * (beta_max - beta_min);
        drift = -0.5 * beta * x;
        diffusion = (beta * (1.0 - (-2.0 * int_beta).exp())).sqrt();
    }
}

sde! {
    /// Variance-exploding SDE with a geometric noise schedule (Song et al. 2021); the
    /// kernel includes the data smoothing at σ_min, as in score_sde.
    pub struct VeSde {
        params { sigma_min: f64 = 0.01, sigma_max: f64 = 50.0 }
        time = [1e-5, 1.0];
        let sigma = sigma_min * (sigma_max / sigma_min).powf(t);
        drift = 0.0;
        diffusion = sigma * (2.0 * (sigma_max / sigma_min).ln()).sqrt();
        mean = 1.0;
        std = sigma;
    }
}

sde! {
    /// The EDM SDE of Karras et al. (2022): σ(t) = t, no scaling.
    pub struct EdmSde {
        params { sigma_min: f64 = 0.002, sigma_max: f64 = 80.0 }
        time = [sigma_min, sigma_max];
        mean = 1.0;
        std = t;
    }
}

sde! {
    /// The cosine schedule of Nichol & Dhariwal (2021): ᾱ(t) = cos²(π/2 (t+s)/(1+s)) / cos²(π/2 s/(1+s)).
    pub struct CosineSde {
        params { s: f64 = 0.008 }
        time = [1e-3, 0.999];
        let phi = 0.5 * PI * (t + s) / (1.0 + s);
        let phi0 = 0.5 * PI * s / (1.0 + s);
        mean = phi.cos() / phi0.cos();
        std = (1.0 - (phi.cos() / phi0.cos()).powi(2)).sqrt();
    }
}

sde! {
    /// Rectified flow (Liu et al. 2022), conditional optimal-transport flow matching
    /// (Lipman et al. 2022): `x_t = (1 − t)·x_0 + t·ε`, pure noise at `t = 1`.
    pub struct RectifiedFlow {
        time = [1e-3, 1.0];
        mean = 1.0 - t;
        std = t;
    }
}

sde! {
    /// TrigFlow (Lu & Song 2024): `x_t = cos(πt/2)·x_0 + sin(πt/2)·ε`, variance
    /// preserving, pure noise at `t = 1` (the paper's time `πt/2` on `[0, π/2]`).
    pub struct TrigFlow {
        time = [1e-3, 1.0];
        mean = (0.5 * PI * t).cos();
        std = (0.5 * PI * t).sin();
    }
}

/// The built-in SDEs' CLI names, with a one-line description each.
pub const NAMES: &[(&str, &str)] = &[
    ("vp", "variance preserving, linear β from 0.1 to 20"),
    ("subvp", "sub-variance preserving, linear β from 0.1 to 20"),
    ("ve", "variance exploding, geometric σ from 0.01 to 50"),
    ("edm", "EDM, σ(t) = t on [0.002, 80]"),
    ("cosine", "cosine schedule of Nichol & Dhariwal, s = 0.008"),
    (
        "rf",
        "rectified flow / flow matching, a = 1 - t, b = t, pure noise at t = 1",
    ),
    (
        "trigflow",
        "TrigFlow, a = cos(pi t/2), b = sin(pi t/2), pure noise at t = 1",
    ),
];

fn canonical(name: &str) -> String {
    name.to_ascii_lowercase().replace(['-', '_'], "")
}

/// A built-in SDE by its CLI name (`vp`, `subvp`/`sub-vp`, `ve`, `edm`, `cosine`),
/// with its default parameters.
pub fn by_name(name: &str) -> Option<Box<dyn crate::GaussianKernel>> {
    Some(match canonical(name).as_str() {
        "vp" => Box::new(VpSde::default()),
        "subvp" => Box::new(SubVpSde::default()),
        "ve" => Box::new(VeSde::default()),
        "edm" => Box::new(EdmSde::default()),
        "cosine" => Box::new(CosineSde::default()),
        "rf" => Box::new(RectifiedFlow),
        "trigflow" => Box::new(TrigFlow),
        _ => return None,
    })
}

/// The derivation of a built-in SDE by its CLI name.
pub fn derivation(name: &str) -> Option<crate::Derivation> {
    Some(match canonical(name).as_str() {
        "vp" => VpSde::derivation(),
        "subvp" => SubVpSde::derivation(),
        "ve" => VeSde::derivation(),
        "edm" => EdmSde::derivation(),
        "cosine" => CosineSde::derivation(),
        "rf" => RectifiedFlow::derivation(),
        "trigflow" => TrigFlow::derivation(),
        _ => return None,
    })
}

/// Every built-in's derivation, in the order of [`NAMES`].
pub fn derivations() -> Vec<crate::Derivation> {
    NAMES.iter().filter_map(|(n, _)| derivation(n)).collect()
}

/// Coefficients' forms by key: `(key, form)`.
pub type Forms = &'static [(&'static str, &'static str)];

/// The papers' forms of the built-ins' coefficients, in the `sde!` expression language
/// (`let` names and `lambda` allowed), by coefficient key (see
/// `sbdm_symbolic::sde::Derived::textbook_forms`): SDE name, source, forms.
/// `tests/textbook.rs` checks that every printed coefficient equals its paper form and
/// has no more operations; `docs/derivations.md` shows both.
pub const PAPER_FORMS: &[(&str, &str, Forms)] = &[
    (
        "vp",
        "score_sde (Song et al. 2021); t(λ) as in DPM-Solver (Lu et al. 2022)",
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
        "score_sde (Song et al. 2021)",
        &[
            ("F", "-0.5 * beta"),
            ("g2", "beta * (1.0 - (-2.0 * int_beta).exp())"),
            ("int_F", "-0.5 * int_beta"),
            ("a", "(-0.5 * int_beta).exp()"),
        ],
    ),
    (
        "ve",
        "score_sde (Song et al. 2021)",
        &[
            ("g2", "2.0 * sigma * sigma * (sigma_max / sigma_min).ln()"),
            ("b2", "sigma * sigma"),
            ("sigma", "sigma"),
            (
                "log_snr",
                "-sigma_min.ln() - t * (sigma_max / sigma_min).ln()",
            ),
            ("dlog_snr", "-(sigma_max / sigma_min).ln()"),
            (
                "t_of_log_snr",
                "-(lambda + sigma_min.ln()) / (sigma_max / sigma_min).ln()",
            ),
        ],
    ),
    (
        "edm",
        "EDM (Karras et al. 2022)",
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
        "Nichol & Dhariwal (2021)",
        &[
            ("F", "-0.5 * PI * phi.tan() / (1.0 + s)"),
            ("g2", "PI * phi.tan() / (1.0 + s)"),
            ("b2", "1.0 - phi.cos().powi(2) / phi0.cos().powi(2)"),
        ],
    ),
    (
        "rf",
        "Liu et al. (2022) and Lipman et al. (2022)",
        &[
            ("F", "-1.0 / (1.0 - t)"),
            ("g2", "2.0 * t / (1.0 - t)"),
            ("sigma", "t / (1.0 - t)"),
            ("log_snr", "((1.0 - t) / t).ln()"),
            ("dlog_snr", "-1.0 / (t * (1.0 - t))"),
            ("t_of_log_snr", "1.0 / (1.0 + lambda.exp())"),
        ],
    ),
    (
        "trigflow",
        "Lu & Song (2024), time rescaled by π/2",
        &[
            ("F", "-0.5 * PI * (0.5 * PI * t).tan()"),
            ("g2", "PI * (0.5 * PI * t).tan()"),
            ("b2", "(0.5 * PI * t).sin().powi(2)"),
            ("sigma", "(0.5 * PI * t).tan()"),
            ("log_snr", "(1.0 / (0.5 * PI * t).tan()).ln()"),
            ("t_of_log_snr", "2.0 * (-lambda).exp().atan() / PI"),
        ],
    ),
];

/// A markdown table of each paper form beside the printed one.
fn forms_table(d: &crate::Derivation, source: &str, forms: &[(&str, &str)]) -> String {
    let mut s =
        format!("\nAs printed, and as in {source}:\n\n| | printed | paper |\n|---|---|---|\n");
    for (key, paper) in forms {
        let printed = d.entry(key).map_or("", |e| e.text.as_ref());
        let label = d.entry(key).map_or(*key, |e| e.label.as_ref());
        s.push_str(&format!("| {label} | `{printed}` | `{paper}` |\n"));
    }
    s
}

/// The generated page `docs/derivations.md`: every built-in's derivation, as text and LaTeX.
pub fn derivations_markdown() -> String {
    let mut s = String::from(
        "# Derivations of the built-in SDEs\n\n\
         Generated from the `sde!` declarations in `sbdm-runtime/src/sde/builtin.rs`; do not edit.\n\
         Regenerate with `SBDM_UPDATE_DOCS=1 cargo test --test docs` \
         (the test fails when this page is stale).\n",
    );
    let section = |s: &mut String, d: &crate::Derivation| {
        s.push_str(&format!("\n## {}\n\n", d.name));
        if let Some(doc) = &d.doc {
            s.push_str(&format!("{doc}\n\n"));
        }
        s.push_str("```text\n");
        s.push_str(&d.to_string());
        s.push_str("```\n\n```latex\n");
        s.push_str(&d.latex());
        s.push_str("```\n");
    };
    for (name, _) in NAMES {
        let Some(d) = derivation(name) else { continue };
        section(&mut s, &d);
        if let Some((_, source, forms)) = PAPER_FORMS.iter().find(|(n, _, _)| n == name) {
            s.push_str(&forms_table(&d, source, forms));
        }
    }
    s
}
