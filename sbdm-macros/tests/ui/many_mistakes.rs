// Several mistakes in one declaration: all are reported in one compile.
sbdm_macros::sde! {
    pub struct Many {
        params { beta_min: f64 = 0.1, beta_max: f64 = 20.0 }
        time = [1e-3, 1.0];
        let beta = betta_min + t * (beta_max - beta_min);
        drift = -0.5 * beta * x + t;
        diffusion = beta^0.5 + x;
        mean = abs(t);
    }
}

fn main() {}
