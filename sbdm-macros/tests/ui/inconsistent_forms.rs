// Both forms given, and they disagree: the VP drift/diffusion with a VE kernel.
sbdm_macros::sde! {
    pub struct Inconsistent {
        params { beta: f64 = 4.0 }
        time = [1e-3, 1.0];
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
        mean = (-0.5 * beta * t).exp();
        std = (beta * t).sqrt();
    }
}

fn main() {}
