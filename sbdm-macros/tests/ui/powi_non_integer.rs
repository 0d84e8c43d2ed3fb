// `powi` takes an integer exponent; `powf` is for real ones.
sbdm_macros::sde! {
    pub struct HalfPower {
        time = [1e-3, 1.0];
        drift = -0.5 * x;
        diffusion = t.powi(0.5);
    }
}

sbdm_macros::sde! {
    pub struct WrongArity {
        time = [1e-3, 1.0];
        drift = -0.5 * x;
        diffusion = t.powf();
    }
}

fn main() {}
