//! Training-time densities: draws against their law, the density's normalisation, the
//! names and the refusals; the default draws are the uniform ones of before.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sbdm_runtime::train::{TimeDensity, TrainConfig};

fn rng() -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(7)
}

#[test]
fn logit_normal_draws_have_the_logit_law() {
    // logit((t − t0)/(t1 − t0)) ~ N(m, s²): its sample mean and variance within 4
    // standard errors (n = 200 000: s.e. of the mean s/√n, of the variance s²·√(2/n)).
    let (t0, t1) = (1e-3, 1.0);
    let n = 200_000;
    for (m, s) in [(0.0, 1.0), (-0.5, 0.7), (1.2, 1.6)] {
        let d = TimeDensity::logit_normal(m, s).unwrap();
        let mut r = rng();
        let logits: Vec<f64> = (0..n)
            .map(|_| {
                let t = d.draw(t0, t1, &mut r);
                assert!((t0..=t1).contains(&t));
                let u = (t - t0) / (t1 - t0);
                (u / (1.0 - u)).ln()
            })
            .collect();
        let mean = logits.iter().sum::<f64>() / n as f64;
        let var = logits.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let nf = n as f64;
        assert!((mean - m).abs() < 4.0 * s / nf.sqrt(), "m {m}: mean {mean}");
        assert!(
            (var - s * s).abs() < 4.0 * s * s * (2.0 / nf).sqrt(),
            "s {s}: variance {var}"
        );
    }
}

#[test]
fn densities_integrate_to_one_and_match_their_draws() {
    // ∫ pdf = 1 on [t0, t1] (midpoint rule, 1e5 cells), and the share of draws below the
    // median of the pdf is 1/2 within 4 s.e.
    let (t0, t1) = (0.002, 0.9);
    for d in [
        TimeDensity::Uniform,
        TimeDensity::logit_normal(0.0, 1.0).unwrap(),
        TimeDensity::logit_normal(0.8, 0.5).unwrap(),
    ] {
        let cells = 100_000;
        let h = (t1 - t0) / cells as f64;
        let mut cdf = Vec::with_capacity(cells);
        let mut acc = 0.0;
        for i in 0..cells {
            acc += d.pdf(t0 + (i as f64 + 0.5) * h, t0, t1) * h;
            cdf.push(acc);
        }
        assert!((acc - 1.0).abs() < 1e-6, "{}: ∫pdf = {acc}", d.name());
        let median = t0 + h * cdf.iter().position(|&c| c >= 0.5).unwrap() as f64;
        let n = 100_000;
        let mut r = rng();
        let below = (0..n).filter(|_| d.draw(t0, t1, &mut r) < median).count();
        let share = below as f64 / n as f64;
        assert!(
            (share - 0.5).abs() < 4.0 * 0.5 / (n as f64).sqrt() + h,
            "{}: {share} below the median {median}",
            d.name()
        );
        assert_eq!(d.pdf(t0 - 0.1, t0, t1), 0.0);
    }
}

#[test]
fn uniform_draws_are_the_plain_uniform_ones() {
    // The default density draws t0 + (t1 − t0)·u from one uniform per time, as training
    // always did: runs without the option are unchanged.
    let (t0, t1) = (1e-3, 1.0);
    let (mut a, mut b) = (rng(), rng());
    for _ in 0..1000 {
        let t = TimeDensity::Uniform.draw(t0, t1, &mut a);
        assert_eq!(t, t0 + (t1 - t0) * b.random::<f64>());
    }
    assert_eq!(TrainConfig::default().time_density, TimeDensity::Uniform);
}

#[test]
fn a_config_written_before_the_option_reads_as_uniform() {
    let mut json = serde_json::to_value(TrainConfig::default()).unwrap();
    json.as_object_mut().unwrap().remove("time_density");
    let cfg: TrainConfig = serde_json::from_value(json).unwrap();
    assert_eq!(cfg.time_density, TimeDensity::Uniform);
}

#[test]
fn names_round_trip_and_bad_ones_are_refused() {
    for name in ["uniform", "logit-normal", "logit-normal:0.5,2"] {
        let d = TimeDensity::from_name(name).unwrap();
        assert_eq!(TimeDensity::from_name(&d.name()).unwrap(), d);
    }
    assert_eq!(
        TimeDensity::from_name("logit-normal").unwrap(),
        TimeDensity::LogitNormal {
            mean: 0.0,
            std: 1.0
        }
    );
    for (bad, says) in [
        ("logit-normal:0,0", "scale must be finite and > 0"),
        ("logit-normal:0,-1", "scale must be finite and > 0"),
        ("logit-normal:nan,1", "location must be finite"),
        ("logit-normal:1", "not two numbers"),
        ("logit-normal:a,b", "not two numbers"),
        (
            "normal",
            "unknown time density `normal`; valid: uniform, logit-normal",
        ),
    ] {
        let err = TimeDensity::from_name(bad).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
        assert_eq!(err.lines().count(), 1);
    }
}
