//! The quickstart. Until training lands (issue 4), it prints the derivation of every
//! built-in SDE, each declared with `sde!`, and a table of their coefficients.
//!
//! Run: `cargo run --release --example quickstart`

use sbdm::prelude::*;

fn main() {
    let derivations = [
        VpSde::derivation(),
        SubVpSde::derivation(),
        VeSde::derivation(),
        EdmSde::derivation(),
        CosineSde::derivation(),
    ];
    for d in &derivations {
        println!("{d}");
    }
    let sdes: [&dyn GaussianKernel; 5] = [
        &VpSde::default(),
        &SubVpSde::default(),
        &VeSde::default(),
        &EdmSde::default(),
        &CosineSde::default(),
    ];
    println!(
        "{:<10} {:>10} {:>12} {:>12} {:>12} {:>12}",
        "sde", "t", "a(t)", "b(t)", "log-SNR", "prior std"
    );
    for sde in sdes {
        let (t0, t1) = sde.time_range();
        let t = 0.5 * (t0 + t1);
        println!(
            "{:<10} {:>10.4} {:>12.6} {:>12.6} {:>12.6} {:>12.6}",
            sde.name(),
            t,
            sde.mean_coef(t),
            sde.std(t),
            sde.log_snr(t),
            sde.prior_std()
        );
    }
}
