// A misspelt name gets a suggestion; a name that resembles nothing lists what is known.
sbdm_macros::sde! {
    pub struct Typo {
        params { beta: f64 = 4.0 }
        time = [1e-3, 1.0];
        drift = -0.5 * betta * x;
        diffusion = beta.sqrt();
    }
}

sbdm_macros::sde! {
    pub struct Unknown {
        params { beta: f64 = 4.0 }
        time = [1e-3, 1.0];
        drift = -0.5 * beta * x;
        diffusion = (beta * gamma).sqrt();
    }
}

fn main() {}
