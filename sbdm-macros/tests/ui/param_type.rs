// Parameters are f64.
sbdm_macros::sde! {
    pub struct SinglePrecision {
        params { beta: f32 = 4.0 }
        time = [1e-3, 1.0];
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

sbdm_macros::sde! {
    pub struct NoType {
        params { beta = 4.0 }
        time = [1e-3, 1.0];
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

fn main() {}
