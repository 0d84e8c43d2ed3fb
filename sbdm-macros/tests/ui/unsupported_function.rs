// Functions outside the supported table, in call and method form.
sbdm_macros::sde! {
    pub struct CallForm {
        time = [1e-3, 1.0];
        drift = -0.5 * x;
        diffusion = abs(t - 2.0);
    }
}

sbdm_macros::sde! {
    pub struct MethodForm {
        time = [1e-3, 1.0];
        drift = -0.5 * x;
        diffusion = (t - 2.0).abs();
    }
}

fn main() {}
