// An item keyword the language does not know; later items are still checked.
sbdm_macros::sde! {
    pub struct Misspelt {
        time = [1e-3, 1.0];
        drift = -0.5 * x;
        difusion = 1.0;
    }
}

fn main() {}
