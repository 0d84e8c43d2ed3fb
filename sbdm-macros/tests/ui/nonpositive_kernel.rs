// a(t) and b(t) must be finite and > 0 on the time range.
sbdm_macros::sde! {
    pub struct NegativeStd {
        time = [1e-3, 1.0];
        mean = 1.0;
        std = t - 0.5;
    }
}

sbdm_macros::sde! {
    pub struct NegativeMean {
        time = [1e-3, 1.0];
        mean = 1.0 - 2.0 * t;
        std = t;
    }
}

sbdm_macros::sde! {
    pub struct Overflow {
        time = [1e-3, 1.0];
        mean = 1.0;
        std = (1e3 * t).exp();
    }
}

fn main() {}
