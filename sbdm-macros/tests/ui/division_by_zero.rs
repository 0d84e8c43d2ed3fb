// A divisor that is 0 at the default params or somewhere on the time range.
sbdm_macros::sde! {
    pub struct ZeroAtDefaults {
        params { beta_min: f64 = 0.1 }
        time = [1e-3, 1.0];
        drift = -0.5 * x / (beta_min - 0.1);
        diffusion = 1.0;
    }
}

sbdm_macros::sde! {
    pub struct LiteralZero {
        time = [1e-3, 1.0];
        drift = -0.5 * x;
        diffusion = 1.0 / 0.0;
    }
}

sbdm_macros::sde! {
    pub struct ZeroInRange {
        time = [0.0, 1.0];
        drift = -0.5 * x;
        diffusion = (1.0 / (t - 0.5)).powi(2);
    }
}

fn main() {}
