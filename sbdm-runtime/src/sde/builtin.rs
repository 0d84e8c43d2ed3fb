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

/// The built-in SDEs' CLI names, with a one-line description each.
pub const NAMES: &[(&str, &str)] = &[
    ("vp", "variance preserving, linear β from 0.1 to 20"),
    ("subvp", "sub-variance preserving, linear β from 0.1 to 20"),
    ("ve", "variance exploding, geometric σ from 0.01 to 50"),
    ("edm", "EDM, σ(t) = t on [0.002, 80]"),
    ("cosine", "cosine schedule of Nichol & Dhariwal, s = 0.008"),
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
        _ => return None,
    })
}

/// Every built-in's derivation, in the order of [`NAMES`].
pub fn derivations() -> Vec<crate::Derivation> {
    NAMES.iter().filter_map(|(n, _)| derivation(n)).collect()
}

/// The generated page `docs/derivations.md`: every built-in's derivation, as text and LaTeX.
pub fn derivations_markdown() -> String {
    let mut s = String::from(
        "# Derivations of the built-in SDEs\n\n\
         Generated from the `sde!` declarations in `sbdm-runtime/src/sde/builtin.rs`; do not edit.\n\
         Regenerate with `SBDM_UPDATE_DOCS=1 cargo test --test docs` \
         (the test fails when this page is stale).\n",
    );
    for d in derivations() {
        s.push_str(&format!("\n## {}\n\n", d.name));
        if let Some(doc) = &d.doc {
            s.push_str(&format!("{doc}\n\n"));
        }
        s.push_str("```text\n");
        s.push_str(&d.to_string());
        s.push_str("```\n\n```latex\n");
        s.push_str(&d.latex());
        s.push_str("```\n");
    }
    s
}
