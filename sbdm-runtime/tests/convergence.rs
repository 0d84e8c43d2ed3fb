//! Convergence of the deterministic samplers against the exact probability-flow ODE.
//!
//! The model is the exact score of a 2-D Gaussian mixture, so the only error left is the
//! solver's. The reference is adaptive RK45 at rtol = atol = 1e-10 on f64 states from
//! the same `x_T`, checked against itself at 1e-11. Each fixed-step sampler runs on the
//! log-SNR grid (on VE it is also the uniform grid) with N doubling; its error is the
//! max-abs difference to the reference over 64 trajectories, and its empirical order is
//! minus the least-squares slope of ln(error) against ln(N) over the last four N, which
//! must be within ±0.3 of theory. Run with `--nocapture` to see the tables.
//!
//! The first-order methods are fitted at larger N than the others: their worst
//! trajectory (the max over 64) is still pre-asymptotic below ~1000 steps, most on VE,
//! where the PF-ODE grows like σ(t) = σ_min·(σ_max/σ_min)^t and Euler's relative error
//! per unit time is ~ln(5000)²·Δt/2.

use candle_core::{DType, Device, Tensor};
use sbdm_runtime::error::{Error, Result};
use sbdm_runtime::model::prediction::Prediction;
use sbdm_runtime::model::{Condition, ScoreModel};
use sbdm_runtime::sampling::noise::Noise;
use sbdm_runtime::sampling::{GridKind, Sampled, Sampler, TimeGrid};
use sbdm_runtime::sde::builtin::{CosineSde, VeSde, VpSde};
use sbdm_runtime::sde::GaussianKernel;

#[path = "common/reparam.rs"]
mod reparam;
use reparam::Reparam;

#[path = "common/orders.rs"]
mod orders;
use orders::{max_abs, order, three_components as mixture};

const BATCH: usize = 64;

/// `BATCH` exact samples of `p_T`, as f64.
fn x_t<S: GaussianKernel>(sde: &S) -> Tensor {
    let t_max = sde.time_range().1;
    mixture()
        .sample_at(sde, t_max, BATCH, 7, &Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
}

fn run_with<S: GaussianKernel, M: ScoreModel>(
    sde: &S,
    model: &M,
    kind: Sampler,
    x_t: &Tensor,
    grid: &TimeGrid,
) -> Result<Sampled> {
    let mut noise = Noise::new(0, 0, x_t.dim(0)?, &[2], &Device::Cpu);
    kind.sample(sde, model, x_t, grid, &mut noise)
}

fn run<S: GaussianKernel>(sde: &S, kind: Sampler, x_t: &Tensor, grid: &TimeGrid) -> Sampled {
    let mix = mixture();
    run_with(sde, &mix.model(sde), kind, x_t, grid).unwrap()
}

/// `steps` steps on the log-SNR grid.
fn fixed(steps: usize) -> TimeGrid {
    TimeGrid::new(GridKind::LogSnr, steps)
}

/// RK45 at rtol = atol = `tol`.
fn rk45(tol: f64) -> Sampler {
    Sampler::Rk45 {
        rtol: tol,
        atol: tol,
    }
}

/// RK45's grid: the whole time range, the first step 1/100 of it.
fn rk45_grid() -> TimeGrid {
    TimeGrid::uniform(100)
}

/// Each sampler under test: its theoretical order and its step counts (the last four
/// are fitted).
const CASES: [(&str, f64, &[usize]); 7] = [
    ("ode-euler", 1.0, &[160, 320, 640, 1280, 2560, 5120]),
    ("ddim", 1.0, &[160, 320, 640, 1280, 2560, 5120]),
    ("dpm1", 1.0, &[160, 320, 640, 1280, 2560, 5120]),
    ("heun", 2.0, &[10, 20, 40, 80, 160, 320]),
    ("dpm2", 2.0, &[10, 20, 40, 80, 160, 320]),
    ("dpmpp2m", 2.0, &[10, 20, 40, 80, 160, 320]),
    ("dpmpp3m", 3.0, &[10, 20, 40, 80, 160, 320, 640]),
];
const FITTED: usize = 4;
const TOLERANCE: f64 = 0.3;

/// The reference solution, its estimated error (against rtol 1e-11) and its NFE.
fn reference<S: GaussianKernel>(sde: &S, x_t: &Tensor) -> (Tensor, f64, usize) {
    let r = run(sde, rk45(1e-10), x_t, &rk45_grid());
    let tighter = run(sde, rk45(1e-11), x_t, &rk45_grid());
    let err = max_abs(&r.x, &tighter.x);
    (r.x, err, r.nfe)
}

/// Measures every case on `sde`, prints the table, and checks the orders and that the
/// reference's own error is negligible against every fitted error.
fn check_orders<S: GaussianKernel>(name: &str, sde: &S) {
    let x_t = x_t(sde);
    let (reference, ref_err, ref_nfe) = reference(sde, &x_t);
    let mut table = format!(
        "\n{name}: reference RK45 rtol = atol = 1e-10, {ref_nfe} NFE; \
         max |x(1e-10) − x(1e-11)| = {ref_err:.1e}\n\
         {:<10} {:>5}  {:>6}  errors (max-abs) at N = ..., and the step-to-step order\n",
        "sampler", "order", "fitted"
    );
    let mut failures = Vec::new();
    for (name, theory, ns) in CASES {
        let kind: Sampler = name.parse().unwrap();
        let errs: Vec<f64> = ns
            .iter()
            .map(|&n| max_abs(&run(sde, kind, &x_t, &fixed(n)).x, &reference))
            .collect();
        let fit = &ns[ns.len() - FITTED..];
        let got = order(fit, &errs[errs.len() - FITTED..]);
        table += &format!("{:<10} {theory:>5.1}  {got:>6.2} ", kind.name());
        for (i, (n, e)) in ns.iter().zip(&errs).enumerate() {
            table += &format!(" N={n}: {e:.2e}");
            if i > 0 {
                table += &format!(" ({:.2})", (errs[i - 1] / e).log2());
            }
        }
        table.push('\n');
        let smallest = errs[errs.len() - FITTED..]
            .iter()
            .cloned()
            .fold(f64::INFINITY, f64::min);
        if ref_err > 1e-3 * smallest {
            failures.push(format!(
                "{}: reference error {ref_err:.1e} is not negligible against {smallest:.1e}",
                kind.name()
            ));
        }
        if (got - theory).abs() > TOLERANCE {
            failures.push(format!(
                "{}: empirical order {got:.2}, theory {theory} ± {TOLERANCE}",
                kind.name()
            ));
        }
    }
    println!("{table}");
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
}

#[test]
fn empirical_orders_on_vp() {
    check_orders("VP", &VpSde::default());
}

#[test]
fn empirical_orders_on_ve() {
    check_orders("VE", &VeSde::default());
}

#[test]
fn empirical_orders_on_cosine() {
    check_orders("cosine", &CosineSde::default());
}

#[test]
fn dpm_solver_1_equals_ddim_eta_0() {
    fn check<S: GaussianKernel>(name: &str, sde: &S) {
        let x_t = x_t(sde);
        for grid in [
            GridKind::LogSnr,
            GridKind::Uniform,
            GridKind::Karras { rho: 7.0 },
        ] {
            let steps = TimeGrid::new(grid, 25);
            let dpm = run(sde, Sampler::Dpm1, &x_t, &steps);
            let ddim = run(sde, Sampler::Ddim { eta: 0.0 }, &x_t, &steps);
            let d = max_abs(&dpm.x, &ddim.x);
            println!("{name} {grid:?}: max |DPM-Solver-1 − DDIM(0)| = {d:.1e}");
            assert!(d < 1e-6, "{name} {grid:?}: {d}");
            assert_eq!((dpm.nfe, ddim.nfe), (25, 25));
        }
    }
    check("VP", &VpSde::default());
    check("VE", &VeSde::default());
    check("cosine", &CosineSde::default());
}

#[test]
fn rk45_reports_nfe_and_it_grows_as_rtol_tightens() {
    let sde = VpSde::default();
    let x_t = x_t(&sde);
    let (reference, _, _) = reference(&sde, &x_t);
    let mut last: Option<(usize, f64)> = None;
    for tol in [1e-3, 1e-5, 1e-7, 1e-9] {
        let out = run(&sde, rk45(tol), &x_t, &rk45_grid());
        let err = max_abs(&out.x, &reference);
        println!(
            "RK45 rtol = atol = {tol:.0e}: NFE {}, max-abs error {err:.1e}",
            out.nfe
        );
        // 6 evaluations per attempted step plus the first: NFE ≡ 1 (mod 6).
        assert_eq!(out.nfe % 6, 1, "NFE {}", out.nfe);
        if let Some((nfe, e)) = last {
            assert!(out.nfe > nfe, "NFE {} at {tol:e} vs {nfe}", out.nfe);
            assert!(err < e, "error {err:e} at {tol:e} vs {e:e}");
        }
        last = Some((out.nfe, err));
    }
}

/// The deterministic PF-ODE samplers this file owns, RK45 at rtol = atol = `tol`.
fn ode_samplers(tol: f64) -> [Sampler; 7] {
    let by_name = |s: &str| s.parse::<Sampler>().unwrap();
    [
        by_name("ode-euler"),
        by_name("heun"),
        rk45(tol),
        Sampler::Dpm1,
        Sampler::Dpm2,
        Sampler::DpmPp2m,
        Sampler::DpmPp3m,
    ]
}

#[test]
fn samplers_agree_across_model_parameterisations() {
    let sde = VeSde::default();
    let x_t = x_t(&sde);
    let mix = mixture();
    for kind in ode_samplers(1e-6) {
        let grid = fixed(12);
        let base = run(&sde, kind, &x_t, &grid);
        for as_ in [Prediction::Eps, Prediction::X0, Prediction::V] {
            let model = Reparam {
                inner: mix.model(&sde),
                sde: &sde,
                as_,
            };
            let other = run_with(&sde, &model, kind, &x_t, &grid).unwrap();
            let d = max_abs(&base.x, &other.x);
            assert!(
                d < 1e-9,
                "{} with a {as_:?} model differs by {d:e}",
                kind.name()
            );
            assert_eq!(base.nfe, other.nfe, "{}", kind.name());
        }
    }
}

/// A model whose output turns NaN below `t = 0.5`.
struct NanBelowHalf<M>(M);

impl<M: ScoreModel> ScoreModel for NanBelowHalf<M> {
    fn prediction(&self) -> Prediction {
        self.0.prediction()
    }
    fn forward(&self, x: &Tensor, t: &Tensor, c: &Condition) -> Result<Tensor> {
        let out = self.0.forward(x, t, c)?;
        let t0 = t.to_dtype(DType::F64)?.to_vec1::<f64>()?[0];
        if t0 < 0.5 {
            Ok(out.affine(f64::NAN, 0.0)?)
        } else {
            Ok(out)
        }
    }
}

#[test]
fn a_non_finite_state_stops_sampling_at_its_step() {
    let sde = VpSde::default();
    let x_t = x_t(&sde);
    let mix = mixture();
    let model = NanBelowHalf(mix.model(&sde));
    for kind in ode_samplers(1e-5) {
        match run_with(&sde, &model, kind, &x_t, &TimeGrid::uniform(10)) {
            // Errors name the step and its start time t_i. The uniform grid is
            // t_i = 1 − 0.0999·i, so t_5 = 0.5005 and t_6 = 0.4006: the one-stage samplers
            // meet the NaN at step 6, Heun and DPM-Solver-2 in step 5's second stage.
            Err(Error::NonFinite { step, t, .. }) => {
                if let Sampler::Rk45 { .. } = kind {
                    assert!((0.5..0.8).contains(&t), "rk45: t = {t}");
                } else {
                    let want = match kind {
                        Sampler::Heun { .. } | Sampler::Dpm2 => 5,
                        _ => 6,
                    };
                    assert_eq!(step, want, "{}", kind.name());
                    let t_want = 1.0 - (1.0 - 1e-3) * want as f64 / 10.0;
                    assert!((t - t_want).abs() < 1e-12, "{}: t = {t}", kind.name());
                }
            }
            other => panic!(
                "{}: expected a non-finite error, got {other:?}",
                kind.name()
            ),
        }
    }
}

#[test]
fn heun_churn_draws_noise_only_when_asked() {
    let sde = VpSde::default();
    let x_t = x_t(&sde);
    let mix = mixture();
    let model = mix.model(&sde);
    let go = |churn: f64, seed: u64| {
        let heun: Sampler = format!("heun(churn={churn})").parse().unwrap();
        let mut noise = Noise::new(seed, 0, BATCH, &[2], &Device::Cpu);
        heun.sample(&sde, &model, &x_t, &fixed(20), &mut noise)
            .unwrap()
            .x
    };
    assert_eq!(max_abs(&go(0.0, 1), &go(0.0, 2)), 0.0);
    assert_eq!(max_abs(&go(10.0, 1), &go(10.0, 1)), 0.0);
    let d = max_abs(&go(10.0, 1), &go(10.0, 2));
    assert!(d > 1e-3, "churn with different seeds differs by only {d:e}");
    // Churn re-noises along the way; the samples stay on the data's scale.
    let x = go(10.0, 1);
    let m = x
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
        * 2.0;
    assert!(
        m.is_finite() && m < 4.0 * mix.second_moment(),
        "E|x|² = {m}"
    );
}
