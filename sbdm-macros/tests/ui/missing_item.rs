// Required items left out: the diffusion, the time range, the whole SDE, the std.
sbdm_macros::sde! {
    pub struct NoDiffusion {
        time = [1e-3, 1.0];
        drift = -0.5 * x;
    }
}

sbdm_macros::sde! {
    pub struct NoTime {
        drift = -0.5 * x;
        diffusion = 1.0;
    }
}

sbdm_macros::sde! {
    pub struct NoSde {
        time = [1e-3, 1.0];
    }
}

sbdm_macros::sde! {
    pub struct NoStd {
        time = [1e-3, 1.0];
        mean = 1.0;
    }
}

fn main() {}
