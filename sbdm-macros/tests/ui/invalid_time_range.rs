// Invalid time ranges: reversed, negative start, one bound, not constant, not a list.
sbdm_macros::sde! {
    pub struct Reversed {
        time = [1.0, 0.5];
        drift = -0.5 * x;
        diffusion = 1.0;
    }
}

sbdm_macros::sde! {
    pub struct Negative {
        time = [-0.1, 1.0];
        drift = -0.5 * x;
        diffusion = 1.0;
    }
}

sbdm_macros::sde! {
    pub struct OneBound {
        time = [1.0];
        drift = -0.5 * x;
        diffusion = 1.0;
    }
}

sbdm_macros::sde! {
    pub struct UsesT {
        time = [1e-3, 2.0 * t];
        drift = -0.5 * x;
        diffusion = 1.0;
    }
}

sbdm_macros::sde! {
    pub struct NotAList {
        time = 1.0;
        drift = -0.5 * x;
        diffusion = 1.0;
    }
}

fn main() {}
