// Expressions the language does not accept: a dangling operator, a comparison, a
// missing `;`, a non-Rust literal.
sbdm_macros::sde! {
    pub struct Dangling {
        time = [1e-3, 1.0];
        drift = -0.5 * x *;
        diffusion = 1.0;
    }
}

sbdm_macros::sde! {
    pub struct Comparison {
        time = [1e-3, 1.0];
        drift = -0.5 * x;
        diffusion = if t > 0.5 { 1.0 } else { 2.0 };
    }
}

sbdm_macros::sde! {
    pub struct MissingSemicolon {
        time = [1e-3, 1.0];
        drift = -0.5 * x;
        diffusion = 1.0
    }
}

sbdm_macros::sde! {
    pub struct ImplicitProduct {
        time = [1e-3, 1.0];
        drift = -0.5 * x;
        diffusion = 2t;
    }
}

fn main() {}
