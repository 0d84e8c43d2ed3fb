// g(t)^2 must be > 0 on the whole time range: given, and derived from a kernel.
sbdm_macros::sde! {
    pub struct Vanishing {
        time = [1e-3, 1.0];
        drift = -0.5 * x;
        diffusion = (0.5 - t).sqrt();
    }
}

sbdm_macros::sde! {
    pub struct Zero {
        time = [1e-3, 1.0];
        drift = -0.5 * x;
        diffusion = 0.0;
    }
}

sbdm_macros::sde! {
    // b^2 = t^2 shrinking faster than a^2 = exp(-8 t): d(b^2)/dt - 2 F b^2 < 0 late.
    pub struct ShrinkingKernel {
        time = [1e-3, 1.0];
        mean = (-4.0 * t).exp();
        std = 0.1 * (1.0 - t) + 0.01;
    }
}

fn main() {}
