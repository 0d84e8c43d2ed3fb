// The drift must be F(t)·x: a term nonlinear in x, a term free of x.
sbdm_macros::sde! {
    pub struct Quadratic {
        time = [1e-3, 1.0];
        drift = -0.5 * x + 0.1 * x * x;
        diffusion = 1.0;
    }
}

sbdm_macros::sde! {
    pub struct Affine {
        time = [1e-3, 1.0];
        drift = -0.5 * x + t;
        diffusion = 1.0;
    }
}

sbdm_macros::sde! {
    pub struct Nonlinear {
        time = [1e-3, 1.0];
        drift = x.sin();
        diffusion = 1.0;
    }
}

fn main() {}
