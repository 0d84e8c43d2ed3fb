//! Arithmetic written so that loops over it vectorise.
//!
//! `f64::exp` and `f32::exp` are calls into libm, which stop the compiler from
//! vectorising any loop that contains them. [`exp`] (f64, for the mixture oracle) and
//! [`exp_f32`] (for activations: [`sigmoid`], SiLU) are the same functions as
//! straight-line arithmetic — range reduction, a polynomial and an exponent built from
//! integer bits — so a loop of them compiles to SIMD instructions (4 lanes of f64, 8 of
//! f32 under AVX2). They use no fused multiply-add: their results are the same bits on
//! every x86-64 CPU, with or without AVX2, and whichever way a loop is vectorised.

/// `1.5·2⁵²`: adding it to a float of magnitude below 2⁵¹ rounds it to an integer held
/// in the low bits of the sum's mantissa.
const ROUND_SHIFT: f64 = 6_755_399_441_055_744.0;
/// `ln 2` split in two (Cody and Waite): the high part has trailing zero bits, so
/// `k·LN2_HI` is exact for the `|k| < 2¹¹` that occur.
const LN2_HI: f64 = 0.693_147_180_369_123_8;
const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
/// Below this `exp` is 0 (the true value is subnormal or smaller: under 2.5e-308).
const EXP_UNDERFLOW: f64 = -708.0;
/// Above this `exp` is +∞ (the true value is above 1.3·10³⁰⁸, within 30% of the largest
/// f64; `2ᵏ` for the `k` beyond it is not a finite f64).
const EXP_OVERFLOW: f64 = 709.4;

/// `eˣ` to within 2 ulp for `x` in `[−708, 709.4]`; 0 below, +∞ above, NaN for NaN.
///
/// `x = k·ln 2 + r` with `k` the nearest integer to `x/ln 2` and `|r| ≤ ln 2 / 2`; `eʳ` is
/// its Taylor polynomial of degree 13 (truncation error below `0.35¹⁴/14! ≈ 5·10⁻¹⁸`
/// relative), and `2ᵏ` is built directly from its exponent bits.
#[inline(always)]
pub fn exp(x: f64) -> f64 {
    let xc = x.clamp(EXP_UNDERFLOW, EXP_OVERFLOW);
    let shifted = xc * std::f64::consts::LOG2_E + ROUND_SHIFT;
    let k = shifted - ROUND_SHIFT;
    let r = (xc - k * LN2_HI) - k * LN2_LO;
    // Horner form of Σ_{j ≤ 13} r^j / j!.
    let mut p = 1.0 / 6_227_020_800.0;
    p = p * r + 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // The integer k sits in the low mantissa bits of `shifted`; 2^k has exponent field k + 1023.
    let k_bits = shifted.to_bits().wrapping_sub(ROUND_SHIFT.to_bits());
    let two_to_k = f64::from_bits(k_bits.wrapping_add(1023) << 52);
    let y = p * two_to_k;
    if x < EXP_UNDERFLOW {
        0.0
    } else if x > EXP_OVERFLOW {
        f64::INFINITY
    } else if x.is_nan() {
        f64::NAN
    } else {
        y
    }
}

/// `e^x` in f32, branch-free so that loops over it vectorise (libm's `expf` does not):
/// `x = n·ln 2 + r` with `|r| ≤ ln 2 / 2`, a degree-6 Taylor polynomial for `e^r`
/// (truncation `r⁷/7! < 1.3e-7`) and `2^n` from the exponent bits. `x` is clamped to
/// `[−87, 88]`, where `e^x` is a normal f32.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n·LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5·2^23 rounds x·log2(e) to the nearest integer n (without SSE4.1) and
    // leaves n in the low mantissa bits: bits(t) = bits(1.5·2^23) + n. Reading n from
    // the bits instead of with `as i32` (a saturating, NaN-checking cast) keeps the
    // loop vectorisable.
    const ROUND: f32 = 12_582_912.0;
    const ROUND_BITS: u32 = 0x4b40_0000;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // n ∈ [−126, 127], so the biased exponent n + 127 ∈ [1, 254]: a normal 2^n.
    let scale = f32::from_bits((t.to_bits() + 127 - ROUND_BITS) << 23);
    p * scale
}

/// The logistic sigmoid `1/(1 + e^(−u))`, through [`exp_f32`].
#[inline(always)]
pub fn sigmoid(u: f32) -> f32 {
    1.0 / (1.0 + exp_f32(-u))
}

/// Runs `kernel`, compiled with AVX2 enabled when this CPU has AVX2 (4-lane f64 vectors
/// instead of SSE2's 2) and as is otherwise. Loops in `kernel`, and in the
/// `#[inline(always)]` functions it calls, vectorise for the wider registers. The result
/// is the same either way: no fused multiply-add is enabled.
///
/// Pass the kernel as an `#[inline(always)]` closure,
/// `vectorised(#[inline(always)] || { ... })`: a closure the compiler keeps as a function
/// of its own is compiled without AVX2 (measured: the mixture oracle ran at SSE2 speed).
#[inline(always)]
pub fn vectorised<R>(kernel: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        #[target_feature(enable = "avx2")]
        fn with_avx2<R>(kernel: impl FnOnce() -> R) -> R {
            kernel()
        }
        // The one unsafe call of the CPU build: a function compiled for AVX2 may only run on a
        // CPU that has it.
        #[allow(unsafe_code)]
        // SAFETY: `is_x86_feature_detected!("avx2")` has just confirmed that it does.
        return unsafe { with_avx2(kernel) };
    }
    kernel()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error against libm over the whole range, on a dense grid and at the edges.
    #[test]
    fn exp_matches_libm() {
        let mut worst: f64 = 0.0;
        let n = 400_000;
        for i in 0..=n {
            let x = (EXP_UNDERFLOW + (EXP_OVERFLOW - EXP_UNDERFLOW) * i as f64 / n as f64)
                .clamp(EXP_UNDERFLOW, EXP_OVERFLOW);
            let (got, want) = (exp(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
        }
        for x in [
            0.0,
            -0.0,
            1e-300,
            -1e-300,
            0.5,
            -0.34657359,
            0.34657359,
            -1.0,
            1.0,
        ] {
            let (got, want) = (exp(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
        }
        // 2 ulp = 4.4e-16.
        assert!(worst < 4.5e-16, "worst relative error {worst:e}");
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn exp_f32_is_accurate() {
        let mut worst = 0f64;
        for i in -87_000..=88_000 {
            let x = i as f32 * 1e-3;
            let want = (x.clamp(-87.0, 88.0) as f64).exp();
            let got = exp_f32(x) as f64;
            worst = worst.max((got / want - 1.0).abs());
        }
        assert!(worst < 5e-7, "max relative error {worst}");
        // Clamped outside [−87, 88]: finite, so σ(u) = 1/(1 + e^(−u)) stays finite.
        assert!(exp_f32(1e4).is_finite() && exp_f32(-1e4) > 0.0);
        assert_eq!(sigmoid(-1e4), sigmoid(-88.0));
        assert!(sigmoid(1e4) == 1.0 && sigmoid(0.0) == 0.5);
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp(-708.5), 0.0);
        assert_eq!(exp(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp(710.0), f64::INFINITY);
        assert_eq!(exp(709.5), f64::INFINITY);
        assert_eq!(exp(f64::INFINITY), f64::INFINITY);
        assert!(exp(f64::NAN).is_nan());
        let big = exp(709.0);
        assert!(((big - 709f64.exp()) / 709f64.exp()).abs() < 4.5e-16);
    }
}
