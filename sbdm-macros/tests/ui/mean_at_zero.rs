// The mean coefficient must start at a(0) = 1.
sbdm_macros::sde! {
    pub struct Scaled {
        time = [1e-3, 1.0];
        mean = 2.0 - t;
        std = t;
    }
}

fn main() {}
