// `^` is XOR in Rust, not a power: the message names `powi`/`powf`.
sbdm_macros::sde! {
    pub struct Caret {
        time = [1e-3, 1.0];
        let beta = 0.1 + 19.9 * t^2;
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

fn main() {}
