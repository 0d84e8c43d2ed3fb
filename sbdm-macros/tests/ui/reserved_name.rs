// Names that are taken: the time, the state, the constants, the functions.
sbdm_macros::sde! {
    pub struct Reserved {
        params { x: f64 = 1.0, exp: f64 = 2.0 }
        time = [1e-3, 1.0];
        let t = 2.0;
        let PI = 3.0;
        drift = -0.5 * x;
        diffusion = 1.0;
    }
}

fn main() {}
