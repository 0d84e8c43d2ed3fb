// Several broken items in one declaration: each is reported, and an item written with
// nothing after `=` is not reported as missing as well.
sbdm_macros::sde! {
    pub struct TwoBroken {
        time = [1e-3, 1.0];
        drift = -0.5 * ;
        diffusion = ;
    }
}

fn main() {}
