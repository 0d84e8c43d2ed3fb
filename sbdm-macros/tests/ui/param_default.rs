// Parameters need a constant default value.
sbdm_macros::sde! {
    pub struct NoDefault {
        params { beta: f64 }
        time = [1e-3, 1.0];
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

sbdm_macros::sde! {
    pub struct EmptyDefault {
        params { beta: f64 = }
        time = [1e-3, 1.0];
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

sbdm_macros::sde! {
    pub struct DefaultUsesT {
        params { beta: f64 = 2.0 * t }
        time = [1e-3, 1.0];
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

fn main() {}
