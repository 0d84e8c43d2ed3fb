//! Counter-based noise (issue 14: noise drawn where the tensors live): Philox4x32-10
//! against Random123's known answers, the standard normals it gives against Φ and for
//! independence, `Noise` with `NoiseKind::Philox` against the point-wise formula (any
//! batch split, any thread count), a stochastic sampler's statistics under it, the
//! generated CUDA kernel's source (snapshot; CI compiles it with NVRTC) compiled for the
//! host against the CPU values; and the noise generated inside the fused step (every
//! form against the drawn tensor, through the step algebra, its errors; the step
//! module's noise forms compiled for the host: `tests/fused_kernel.rs`).

use candle_core::{DType, Device, Tensor};
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::report::metrics::second_moment;
use sbdm_runtime::sampling::fused::{combine, combine_noisy};
use sbdm_runtime::sampling::noise::{GeneratedNoise, NoiseDraw};
use sbdm_runtime::sampling::philox::{
    normal_at, philox4x32_10, PhiloxFill, KEY_BUMPS, MULTIPLIERS,
};
use sbdm_runtime::sampling::philox_kernel::{module_source, KERNEL};
use sbdm_runtime::sampling::step::{Buffer, LinComb};
use sbdm_runtime::sampling::{Noise, NoiseKind, Sampler, TimeGrid};
use sbdm_runtime::sde::builtin::VpSde;

#[path = "common/cuda_host.rs"]
mod cuda_host;
use cuda_host::run_on_host;
#[path = "common/lcg.rs"]
mod lcg;
#[path = "common/normal_cdf.rs"]
mod normal_cdf;
use normal_cdf::normal_cdf;

#[test]
fn philox_matches_random123s_known_answers() {
    // Random123's kat_vectors, `philox4x32 10`: counter, key, result.
    let vectors: [([u32; 4], [u32; 2], [u32; 4]); 3] = [
        (
            [0; 4],
            [0; 2],
            [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8],
        ),
        (
            [u32::MAX; 4],
            [u32::MAX; 2],
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
        ),
        (
            [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
            [0xa4093822, 0x299f31d0],
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
        ),
    ];
    for (ctr, key, want) in vectors {
        assert_eq!(philox4x32_10(ctr, key), want, "{ctr:x?} {key:x?}");
    }
}

/// `n` values of stream `stream`, draw `draw`, as f64.
fn values(seed: u64, stream: u64, draw: u32, n: usize) -> Vec<f64> {
    (0..n as u64)
        .map(|i| f64::from(normal_at(seed, stream, draw, i)))
        .collect()
}

/// The sample correlation of two equal-length samples.
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

#[test]
fn the_values_are_standard_normal_and_independent() {
    let n = 200_000;
    let v = values(11, 3, 0, n);
    let nf = n as f64;
    // Mean and variance within 5 standard errors (Var of the sample variance: 2/n).
    let mean = v.iter().sum::<f64>() / nf;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (nf - 1.0);
    assert!(mean.abs() < 5.0 / nf.sqrt(), "mean {mean}");
    assert!(
        (var - 1.0).abs() < 5.0 * (2.0 / nf).sqrt(),
        "variance {var}"
    );
    // Kolmogorov–Smirnov against Φ: the 0.1% critical value is 1.95/√n.
    let mut sorted = v.clone();
    sorted.sort_by(f64::total_cmp);
    let ks = sorted
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let f = normal_cdf(x);
            (f - i as f64 / nf)
                .abs()
                .max(((i + 1) as f64 / nf - f).abs())
        })
        .fold(0.0, f64::max);
    assert!(ks < 1.95 / nf.sqrt(), "KS distance {ks}");
    // Tails: 4σ is exceeded with probability 6.3e-5 (12.7 expected here).
    let tails = v.iter().filter(|x| x.abs() > 4.0).count();
    assert!((2..=35).contains(&tails), "{tails} values beyond 4σ");
    // Uncorrelated: the two values of a Box–Muller pair, the pairs of a block, the same
    // index in the next draw, the next stream, another seed (5/√n each).
    let m = n / 4;
    let lane = |k: usize| -> Vec<f64> { (0..m).map(|i| v[4 * i + k]).collect() };
    let limit = 5.0 / (m as f64).sqrt();
    for (a, b, what) in [
        (0, 1, "cos/sin of a pair"),
        (0, 2, "two pairs of a block"),
        (1, 3, "sines of a block"),
    ] {
        let r = correlation(&lane(a), &lane(b));
        assert!(r.abs() < limit, "{what}: correlation {r}");
    }
    let limit = 5.0 / nf.sqrt();
    for (other, what) in [
        (values(11, 3, 1, n), "next draw"),
        (values(11, 4, 0, n), "next stream"),
        (values(12, 3, 0, n), "next seed"),
        (values(11, 3 + (1 << 32), 0, n), "stream 2^32 further"),
    ] {
        let r = correlation(&v, &other);
        assert!(r.abs() < limit, "{what}: correlation {r}");
    }
}

#[test]
fn philox_noise_is_the_pointwise_formula_for_any_split() {
    let (seed, offset, dims) = (5, 40, [3usize, 7]);
    let per: usize = dims.iter().product();
    // 5000 rows: filled in parts on the pool's threads where there are several cores.
    for n in [1, 3, 5000] {
        let mut noise = Noise::with_kind(NoiseKind::Philox, seed, offset, n, &dims, &Device::Cpu);
        assert_eq!(noise.kind(), NoiseKind::Philox);
        for draw in 0..3u32 {
            let got = noise.draw().unwrap();
            assert_eq!(got.dims(), &[n, 3, 7]);
            let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
            let want: Vec<f32> = (0..n)
                .flat_map(|i| {
                    (0..per as u64).map(move |j| normal_at(seed, offset + i as u64, draw, j))
                })
                .collect();
            assert_eq!(got, want, "n {n}, draw {draw}");
        }
    }
    // Row i of a batch is the row drawn alone at offset + i.
    let mut batch = Noise::with_kind(NoiseKind::Philox, 9, 0, 10, &[4], &Device::Cpu);
    let rows = batch.draw().unwrap();
    let mut alone = Noise::with_kind(NoiseKind::Philox, 9, 6, 1, &[4], &Device::Cpu);
    assert_eq!(
        rows.get(6).unwrap().to_vec1::<f32>().unwrap(),
        alone
            .draw()
            .unwrap()
            .get(0)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    );
    // The default is ChaCha, whose numbers are unchanged.
    assert_eq!(
        Noise::new(1, 0, 2, &[2], &Device::Cpu).kind(),
        NoiseKind::ChaCha
    );
    assert_eq!("philox".parse::<NoiseKind>().unwrap(), NoiseKind::Philox);
    let err = "mt19937".parse::<NoiseKind>().unwrap_err().to_string();
    assert!(err.contains("valid: chacha, philox"), "{err}");
}

#[test]
fn a_stochastic_sampler_under_philox_noise_matches_chacha_noise() {
    // Ancestral sampling from the exact mixture: the second moment of the samples under
    // either generator, equal within 5 standard errors of the difference (the same
    // discretisation, independent noise).
    let sde = VpSde::default();
    let mix = GaussianMixture::ring(8, 4.0, 0.5).unwrap();
    let model = mix.model(&sde);
    let grid = TimeGrid::uniform(100);
    let n = 20_000;
    let moment = |kind| {
        let mut noise = Noise::with_kind(kind, 3, 0, n, &[2], &Device::Cpu);
        let x_t = noise.draw().unwrap();
        let out = Sampler::Ancestral
            .sample_in_place(&sde, &model, x_t, &grid, &mut noise)
            .unwrap();
        second_moment(&out.x).unwrap()
    };
    let ((a, sa), (b, sb)) = (moment(NoiseKind::ChaCha), moment(NoiseKind::Philox));
    let se = (sa * sa + sb * sb).sqrt();
    assert!(
        (a - b).abs() < 5.0 * se,
        "E|x|² {a} (chacha) vs {b} (philox), s.e. {se}"
    );
    // And both near the exact value (16.25 for this ring at t = 0 up to the last step).
    assert!((b - 16.25).abs() < 0.5, "E|x|² {b}");
}

#[test]
fn the_noise_kernel_is_the_cpu_formula_in_cuda() {
    let src = module_source();
    assert_eq!(src.matches(&format!("void {KERNEL}(")).count(), 1);
    for c in MULTIPLIERS.iter().chain(&KEY_BUMPS) {
        assert!(src.contains(&format!("{c:#010x}u")), "{c:#010x}");
    }
    for piece in [
        "sqrt(-2.0 * log(u1))",
        "sincos(",
        "out[2 * pair] = (float)(r * co);",
        "out[2 * pair + 1] = (float)(r * s);",
    ] {
        assert!(src.contains(piece), "{piece}");
    }
    insta::assert_snapshot!(src);
}

const HOST_MAIN: &str = r#"
int main(int argc, char** argv) {
    if (argc != 6) return 2;
    unsigned long long rows = strtoull(argv[1], 0, 10), per = strtoull(argv[2], 0, 10);
    unsigned long long seed = strtoull(argv[3], 0, 10), first = strtoull(argv[4], 0, 10);
    unsigned int draw = (unsigned int)strtoul(argv[5], 0, 10);
    float* out = (float*)calloc(rows * per, sizeof(float));
    sbdm_philox_normal_f32(out, rows, per, seed, first, draw);
    for (unsigned long long i = 0; i < rows * per; ++i) {
        unsigned int bits;
        __builtin_memcpy(&bits, &out[i], 4);
        printf("%08x\n", bits);
    }
    return 0;
}
"#;

#[test]
fn the_kernel_compiled_for_the_host_gives_the_cpu_values() {
    // The generated CUDA source, compiled as C++ with host stand-ins and run: every value
    // bit-equal to `normal_at` (the same double arithmetic and C library), so the
    // kernel's indexing, lanes, constants and transform are the CPU's. (On a GPU the
    // device's `log`/`sincos` may differ in the last double bit: the device check
    // compares there.)
    let (rows, per, seed, first, draw) =
        (3u64, 7u64, 0x1234_5678_9abc_def0u64, (1u64 << 32) + 5, 2u32);
    let args = [rows, per, seed, first, u64::from(draw)].map(|v| v.to_string());
    let got: Vec<u32> = run_on_host(&format!("{}{HOST_MAIN}", module_source()), &args)
        .iter()
        .map(|l| u32::from_str_radix(l, 16).unwrap())
        .collect();
    let want: Vec<u32> = (0..rows)
        .flat_map(|r| (0..per).map(move |j| normal_at(seed, first + r, draw, j).to_bits()))
        .collect();
    assert_eq!(got, want);
}

fn tensor(v: &[f64], shape: &[usize], dtype: DType) -> Tensor {
    Tensor::from_slice(v, shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn noise_in_the_pass_is_the_drawn_noise_added_last() {
    // Every form of the pass with noise generated inside it, against the same draw
    // filled into a tensor and added by the noiseless pass as its last source: bit-equal
    // where that is one pass too (at most one other source), else within f32/f64
    // rounding of the exact sum. Rows of 1, 3 (a cut Philox block) and 8 values; 5000
    // rows are split over the pool's threads where there are several cores.
    let fill = |per| PhiloxFill {
        seed: 0xfeed,
        first_stream: 17,
        draw: 3,
        per,
    };
    for dtype in [DType::F32, DType::F64] {
        for (rows, per) in [(1, 1), (7, 3), (5000, 3), (2, 8)] {
            let n = rows * per;
            let shape = [rows, per];
            let noise = fill(per);
            let drawn = GeneratedNoise {
                fill: noise,
                dims: shape.to_vec(),
            }
            .materialise(&Device::Cpu, dtype)
            .unwrap();
            let (y, z) = (
                tensor(&lcg::values(n, 2), &shape, dtype),
                tensor(&lcg::values(n, 3), &shape, dtype),
            );
            for c_x in [Some(0.9), None] {
                for k in 0..=2 {
                    let sources: Vec<(f64, &Tensor)> =
                        [(0.3, &y), (-0.7, &z)].into_iter().take(k).collect();
                    let x = tensor(&lcg::values(n, 1), &shape, dtype);
                    let start = flat(&x);
                    combine_noisy(&x, c_x, &sources, (0.25, noise)).unwrap();
                    let got = flat(&x);
                    let what = format!("{dtype:?} {rows}x{per} c_x {c_x:?} {k} sources");
                    if k < 2 {
                        let reference = tensor(&start, &shape, dtype);
                        let mut with_noise = sources.clone();
                        with_noise.push((0.25, &drawn));
                        combine(&reference, c_x, &with_noise).unwrap();
                        assert_eq!(got, flat(&reference), "{what}");
                    }
                    let (yv, zv, nv) = (flat(&y), flat(&z), flat(&drawn));
                    for i in 0..n {
                        let mut exact = c_x.map_or(0.0, |c| c * start[i]) + 0.25 * nv[i];
                        for (j, (c, _)) in sources.iter().enumerate() {
                            exact += c * [&yv, &zv][j][i];
                        }
                        let tol = if dtype == DType::F32 { 1e-6 } else { 1e-14 };
                        assert!((got[i] - exact).abs() <= tol * 8.0, "{what}: {i}");
                    }
                }
            }
        }
    }
}

#[test]
fn the_step_algebra_generates_philox_noise_in_the_last_pass() {
    let shape = [6usize, 5];
    let n = 30;
    let mut philox = Noise::with_kind(NoiseKind::Philox, 4, 2, 6, &[5], &Device::Cpu);
    let mut drawn = philox.clone();
    let z = philox.next_draw(DType::F32).unwrap();
    let z_tensor = Buffer::new(drawn.draw().unwrap()).unwrap();
    assert!(matches!(z, NoiseDraw::Generated(_)));
    assert_eq!(z.dims(), &shape);
    let x0 = tensor(&lcg::values(n, 5), &shape, DType::F32);
    let y = Buffer::new(tensor(&lcg::values(n, 6), &shape, DType::F32)).unwrap();
    // An Euler–Maruyama-like step: bit-equal to adding the drawn tensor.
    let step = |noise: LinComb| {
        let x = Buffer::copy_of(&x0).unwrap();
        x.assign(0.9 * &x + 0.3 * &y + noise).unwrap();
        flat(&x)
    };
    let want = step(0.2 * &z_tensor);
    assert_eq!(step(0.2 * &z), want);
    // The same draw twice is one term; a zero coefficient drops it.
    assert_eq!(step(0.1 * &z + 0.1 * &z), want);
    assert!((0.0 * &z).as_tensor().is_none());
    assert_eq!(step(0.0 * &z), step(LinComb::default()));
    // Two draws: one generated in the pass, the other computed as a tensor first.
    let z2 = philox.next_draw(DType::F32).unwrap();
    let z2_tensor = Buffer::new(drawn.draw().unwrap()).unwrap();
    let two = step(0.2 * &z + 0.5 * &z2);
    let two_drawn = step(0.2 * &z_tensor + 0.5 * &z2_tensor);
    for (a, b) in two.iter().zip(&two_drawn) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    // A combination evaluated into a fresh tensor, in f64: the f32 draw widened.
    let z64 = Noise::with_kind(NoiseKind::Philox, 4, 2, 6, &[5], &Device::Cpu)
        .next_draw(DType::F64)
        .unwrap();
    let like = Tensor::zeros(&shape, DType::F64, &Device::Cpu).unwrap();
    let evaluated = (1.0 * &z64).evaluate(&like).unwrap();
    assert_eq!(evaluated.dtype(), DType::F64);
    assert_eq!(flat(&evaluated), flat(&z_tensor));
    // Under ChaCha a draw is a tensor.
    let mut chacha = Noise::new(4, 2, 6, &[5], &Device::Cpu);
    assert!(matches!(
        chacha.next_draw(DType::F32).unwrap(),
        NoiseDraw::Tensor(_)
    ));
}

#[test]
fn noise_that_does_not_fit_the_state_is_an_error() {
    let x = Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap();
    let fill = PhiloxFill {
        seed: 1,
        first_stream: 0,
        draw: 0,
        per: 2,
    };
    let e = combine_noisy(&x, Some(1.0), &[], (1.0, fill))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("noise of 2 values a row") && e.contains("[4, 3]"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1);
    // Through the step algebra: a draw of another shape names both shapes.
    let mut noise = Noise::with_kind(NoiseKind::Philox, 1, 0, 5, &[3], &Device::Cpu);
    let z = noise.next_draw(DType::F32).unwrap();
    let x = Buffer::new(x).unwrap();
    let e = x.assign(1.0 * &x + 1.0 * &z).unwrap_err().to_string();
    assert!(e.contains("[5, 3]") && e.contains("[4, 3]"), "{e}");
}
