// Only the drift may depend on the state `x`.
sbdm_macros::sde! {
    pub struct XInDiffusion {
        time = [1e-3, 1.0];
        drift = -0.5 * x;
        diffusion = (1.0 + x * x).sqrt();
    }
}

sbdm_macros::sde! {
    pub struct XInStd {
        time = [1e-3, 1.0];
        mean = 1.0;
        std = t * x;
    }
}

sbdm_macros::sde! {
    pub struct XInLet {
        time = [1e-3, 1.0];
        let beta = 1.0 + x;
        drift = -0.5 * beta * x;
        diffusion = 1.0;
    }
}

fn main() {}
