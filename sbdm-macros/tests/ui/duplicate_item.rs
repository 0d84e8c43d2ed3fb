// An item declared twice.
sbdm_macros::sde! {
    pub struct TwoDrifts {
        time = [1e-3, 1.0];
        drift = -0.5 * x;
        diffusion = 1.0;
        drift = -x;
    }
}

sbdm_macros::sde! {
    pub struct TwoParamBlocks {
        params { a: f64 = 1.0 }
        params { b: f64 = 2.0 }
        time = [1e-3, 1.0];
        drift = -a * x;
        diffusion = b;
    }
}

sbdm_macros::sde! {
    pub struct SameNameTwice {
        params { beta: f64 = 1.0 }
        time = [1e-3, 1.0];
        let beta = 2.0 * t;
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }
}

fn main() {}
