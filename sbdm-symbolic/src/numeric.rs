//! Numerics used where no closed form exists: adaptive quadrature and monotone inversion.
//!
//! Both work on plain `f64` functions and depend on nothing else in the crate:
//!
//! - [`integrate`] / [`integrate_with_tol`] / [`integrate_with_error`]: globally adaptive Gauss–Kronrod (G7/K15)
//!   quadrature with bisection of the worst subinterval, the scheme of QUADPACK's QAG.
//! - [`invert_monotone`]: solve `f(t) = y` for a monotone `f` by Brent's method on a
//!   bracket, expanding the bracket when `y` lies outside it and clamping when it cannot.
//!
//! Neither panics nor loops without bound: every loop has a fixed iteration cap.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Default relative accuracy of [`integrate`].
pub const DEFAULT_REL_TOL: f64 = 1e-13;
/// Default absolute accuracy floor of [`integrate`].
pub const DEFAULT_ABS_TOL: f64 = 1e-300;

/// Deepest bisection level of a subinterval: a width of `(b − a)/2^50`.
const MAX_DEPTH: u32 = 50;
/// Most subintervals kept at once (15 evaluations each).
const MAX_INTERVALS: usize = 4000;

#[allow(clippy::excessive_precision)] // the published digits
/// Kronrod 15-point abscissae on [-1, 1] (positive half, descending; QUADPACK `qk15`).
/// The odd-indexed ones (1, 3, 5, 7) are the 7-point Gauss abscissae.
const XGK: [f64; 8] = [
    0.991_455_371_120_812_639_206_854_697_526_329,
    0.949_107_912_342_758_524_526_189_684_047_851,
    0.864_864_423_359_769_072_789_712_788_640_926,
    0.741_531_185_599_394_439_863_864_773_280_788,
    0.586_087_235_467_691_130_294_144_845_693_013,
    0.405_845_151_377_397_166_906_606_412_076_961,
    0.207_784_955_007_898_467_600_689_403_773_245,
    0.0,
];
#[allow(clippy::excessive_precision)]
/// Kronrod 15-point weights matching [`XGK`].
const WGK: [f64; 8] = [
    0.022_935_322_010_529_224_963_732_008_058_970,
    0.063_092_092_629_978_553_290_700_663_189_204,
    0.104_790_010_322_250_183_839_876_322_541_518,
    0.140_653_259_715_525_918_745_189_590_510_238,
    0.169_004_726_639_267_902_826_583_426_598_550,
    0.190_350_578_064_785_409_913_256_402_421_014,
    0.204_432_940_075_298_892_414_161_999_234_649,
    0.209_482_141_084_727_828_012_999_174_891_714,
];
#[allow(clippy::excessive_precision)]
/// Gauss 7-point weights for the abscissae `XGK[1], XGK[3], XGK[5], XGK[7]`.
const WG: [f64; 4] = [
    0.129_484_966_168_869_693_270_611_432_679_082,
    0.279_705_391_489_276_667_901_467_771_423_780,
    0.381_830_050_505_118_944_950_369_775_488_975,
    0.417_959_183_673_469_387_755_102_040_816_327,
];

/// `∫_a^b f(s) ds` to a relative accuracy of about `1e-13`.
///
/// Globally adaptive Gauss–Kronrod (G7/K15) quadrature: the subinterval with the largest
/// error estimate is bisected until the summed estimate is below
/// `max(1e-13·|I|, 1e-300)`, the error is at the level of rounding, a subinterval
/// would go deeper than 50 bisections, or 4000 subintervals are in use. Smooth
/// integrands (exponentials of polynomials, `β(s)·exp(∫β)`, `σ²·r^{2s}`) come out
/// correct to ~1e-15 relative.
///
/// - `a == b` gives `0`; `a > b` gives `−∫_b^a f`.
/// - `NaN` (callers check [`f64::is_finite`]) for a non-finite limit, an integrand that
///   returns a non-finite value anywhere it is sampled, or one that is so singular or
///   divergent that refinement stops with an error estimate above `1e-6·|I|`.
///
/// ```
/// use sbdm_symbolic::numeric::integrate;
/// // ∫_0^1 exp(−s²) ds = (√π/2)·erf(1)
/// let i = integrate(|s: f64| (-s * s).exp(), 0.0, 1.0);
/// assert!((i - 0.746_824_132_812_427_0).abs() < 1e-14);
/// // Reversed limits flip the sign; a divergent integral gives NaN.
/// assert_eq!(integrate(|s| s, 1.0, 0.0), -0.5);
/// assert!(integrate(|s: f64| 1.0 / s, 0.0, 1.0).is_nan());
/// ```
pub fn integrate<F: Fn(f64) -> f64>(f: F, a: f64, b: f64) -> f64 {
    integrate_with_tol(f, a, b, DEFAULT_REL_TOL, DEFAULT_ABS_TOL)
}

/// `∫_a^b f(s) ds` to `max(rel_tol·|I|, abs_tol)`, as far as rounding allows.
///
/// The same algorithm and conventions as [`integrate`]; a non-positive or `NaN`
/// tolerance means "as accurate as the limits allow". The result is `NaN` when the
/// final error estimate exceeds `max(rel_tol, 1e-6)·|I|` (and `abs_tol`).
///
/// ```
/// use sbdm_symbolic::numeric::integrate_with_tol;
/// let i = integrate_with_tol(|s: f64| s.sqrt(), 0.0, 1.0, 1e-10, 0.0);
/// assert!((i - 2.0 / 3.0).abs() < 1e-10);
/// ```
pub fn integrate_with_tol<F: Fn(f64) -> f64>(
    f: F,
    a: f64,
    b: f64,
    rel_tol: f64,
    abs_tol: f64,
) -> f64 {
    let (value, error, abs_integral) = adaptive(f, a, b, rel_tol, abs_tol);
    // Accept what the loop accepts, or a result within 1e-6 that the limits stopped.
    let loose = (rel_tol.max(1e-6) * value.abs())
        .max(abs_tol)
        .max(ROUNDOFF * abs_integral);
    if error <= loose {
        value
    } else {
        f64::NAN
    }
}

/// `(∫_a^b f(s) ds, error estimate)`, without giving up on a large error.
///
/// The same algorithm as [`integrate_with_tol`], for callers that report the accuracy
/// reached (a derivation that fell back to numerics). Both are `NaN` for a non-finite
/// limit or integrand value; otherwise the estimate is returned however large.
///
/// ```
/// use sbdm_symbolic::numeric::integrate_with_error;
/// let (i, err) = integrate_with_error(|s: f64| s.cos(), 0.0, 1.0, 1e-13, 0.0);
/// assert!((i - 1f64.sin()).abs() <= err.max(1e-15));
/// assert!(err < 1e-13);
/// ```
pub fn integrate_with_error<F: Fn(f64) -> f64>(
    f: F,
    a: f64,
    b: f64,
    rel_tol: f64,
    abs_tol: f64,
) -> (f64, f64) {
    let (value, error, _) = adaptive(f, a, b, rel_tol, abs_tol);
    (value, error)
}

/// Multiple of `ε·∫|f|` below which an error estimate is all rounding.
const ROUNDOFF: f64 = 100.0 * f64::EPSILON;

/// The adaptive loop: `(∫f, error estimate, ∫|f|)`.
fn adaptive<F: Fn(f64) -> f64>(
    f: F,
    a: f64,
    b: f64,
    rel_tol: f64,
    abs_tol: f64,
) -> (f64, f64, f64) {
    const FAIL: (f64, f64, f64) = (f64::NAN, f64::NAN, f64::NAN);
    if !a.is_finite() || !b.is_finite() {
        return FAIL;
    }
    if a == b {
        return (0.0, 0.0, 0.0);
    }
    if a > b {
        let (value, error, abs_integral) = adaptive(f, b, a, rel_tol, abs_tol);
        return (-value, error, abs_integral);
    }
    let rel_tol = if rel_tol > 0.0 { rel_tol } else { 0.0 };
    let abs_tol = if abs_tol > 0.0 { abs_tol } else { 0.0 };

    let Some(first) = kronrod15(&f, a, b, 0) else {
        return FAIL;
    };
    let mut total = first.result;
    let mut total_err = first.error;
    let mut total_abs = first.abs;
    let mut heap = BinaryHeap::new();
    heap.push(first);
    // Intervals that cannot be bisected further (depth or width exhausted).
    let mut frozen: Vec<Piece> = Vec::new();

    while heap.len() + frozen.len() < MAX_INTERVALS {
        // Each piece's estimate is floored at 50ε·∫|f|; twice that is all rounding.
        let roundoff = ROUNDOFF * total_abs;
        let tol = (rel_tol * total.abs()).max(abs_tol).max(roundoff);
        if total_err <= tol {
            break;
        }
        let Some(worst) = heap.pop() else { break };
        let mid = 0.5 * (worst.a + worst.b);
        if worst.depth >= MAX_DEPTH || mid <= worst.a || mid >= worst.b {
            frozen.push(worst);
            continue;
        }
        let (Some(left), Some(right)) = (
            kronrod15(&f, worst.a, mid, worst.depth + 1),
            kronrod15(&f, mid, worst.b, worst.depth + 1),
        ) else {
            return FAIL;
        };
        total += left.result + right.result - worst.result;
        total_err += left.error + right.error - worst.error;
        total_abs += left.abs + right.abs - worst.abs;
        heap.push(left);
        heap.push(right);
    }
    // Re-sum from the pieces (compensated) rather than trust the running totals.
    let pieces = || heap.iter().chain(frozen.iter());
    (
        neumaier_sum(pieces().map(|p| p.result)),
        neumaier_sum(pieces().map(|p| p.error)),
        neumaier_sum(pieces().map(|p| p.abs)),
    )
}

/// One subinterval with its K15 estimate and error estimate; ordered by error.
#[derive(Debug, Clone, Copy)]
struct Piece {
    a: f64,
    b: f64,
    depth: u32,
    result: f64,
    error: f64,
    /// `∫|f|` over the piece, for the rounding floor.
    abs: f64,
}

impl PartialEq for Piece {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Piece {}
impl PartialOrd for Piece {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Piece {
    fn cmp(&self, other: &Self) -> Ordering {
        self.error.total_cmp(&other.error)
    }
}

/// The 15-point Kronrod rule on [a, b] with QUADPACK's error estimate;
/// `None` if `f` returns a non-finite value.
fn kronrod15<F: Fn(f64) -> f64>(f: &F, a: f64, b: f64, depth: u32) -> Option<Piece> {
    let centre = 0.5 * (a + b);
    let half = 0.5 * (b - a);
    let fc = f(centre);
    if !fc.is_finite() {
        return None;
    }
    let mut res_g = fc * WG[3];
    let mut res_k = fc * WGK[7];
    let mut res_abs = res_k.abs();
    let mut fv1 = [0.0; 7];
    let mut fv2 = [0.0; 7];
    for j in 0..7 {
        let dx = half * XGK[j];
        let (f1, f2) = (f(centre - dx), f(centre + dx));
        if !f1.is_finite() || !f2.is_finite() {
            return None;
        }
        fv1[j] = f1;
        fv2[j] = f2;
        res_k += WGK[j] * (f1 + f2);
        res_abs += WGK[j] * (f1.abs() + f2.abs());
        if j % 2 == 1 {
            res_g += WG[j / 2] * (f1 + f2);
        }
    }
    let mean = 0.5 * res_k;
    let mut res_asc = WGK[7] * (fc - mean).abs();
    for j in 0..7 {
        res_asc += WGK[j] * ((fv1[j] - mean).abs() + (fv2[j] - mean).abs());
    }
    let result = res_k * half;
    let res_abs = res_abs * half.abs();
    let res_asc = res_asc * half.abs();
    let mut error = ((res_k - res_g) * half).abs();
    if res_asc != 0.0 && error != 0.0 {
        error = res_asc * (200.0 * error / res_asc).powf(1.5).min(1.0);
    }
    if res_abs > f64::MIN_POSITIVE / (50.0 * f64::EPSILON) {
        error = error.max(50.0 * f64::EPSILON * res_abs);
    }
    if !result.is_finite() || !error.is_finite() {
        return None;
    }
    Some(Piece {
        a,
        b,
        depth,
        result,
        error,
        abs: res_abs,
    })
}

/// Neumaier's compensated sum.
fn neumaier_sum(values: impl Iterator<Item = f64>) -> f64 {
    let mut sum = 0.0_f64;
    let mut comp = 0.0_f64;
    for v in values {
        let t = sum + v;
        if sum.abs() >= v.abs() {
            comp += (sum - t) + v;
        } else {
            comp += (v - t) + sum;
        }
        sum = t;
    }
    sum + comp
}

/// Most bracket-expansion steps on each side.
const MAX_EXPAND: usize = 2200;
/// Most Brent iterations.
const MAX_ITER: usize = 1000;

/// Solve `f(t) = y` for a monotone `f` on `[lo, hi]`.
///
/// The direction (increasing or decreasing) is read from `f(lo)` and `f(hi)`. Brent's
/// method (inverse quadratic interpolation safeguarded by bisection) then shrinks the
/// bracket until `f(t) == y` exactly or the bracket is a few ulps of `t` wide, so
/// `|Δt| ≤ 1e-12·max(1, |t|)` always holds, and small roots are found to full
/// relative precision too.
///
/// **Outside the bracket.** If `y` lies beyond `f(lo)` the lower end is moved towards
/// zero, `lo/2, lo/4, …` down to ~1e-300 and then `0`, but only while `lo > 0`. If `y`
/// lies beyond `f(hi)` the upper end is doubled, up to `1e6·hi` (for `hi ≤ 0`, it steps
/// up by doubling multiples of `max(1, hi − lo)`, to the same distance). If `y` is still
/// not bracketed, the function returns the endpoint reached on that side: `y` is
/// **clamped**, never extrapolated. Expansion stops at the first point where `f` is
/// `NaN`, keeping the last good endpoint.
///
/// Degenerate input never panics: `lo > hi` are swapped; `lo == hi` returns `lo`;
/// a constant `f` (`f(lo) == f(hi)`) returns `lo`; a `NaN` `y`, bound, or `NaN` value
/// of `f` at an endpoint or inside the bracket returns `NaN`.
///
/// ```
/// use sbdm_symbolic::numeric::invert_monotone;
/// // Increasing: t³ = 8 on [0, 5].
/// let t = invert_monotone(|t: f64| t * t * t, 8.0, 0.0, 5.0);
/// assert!((t - 2.0).abs() < 1e-12);
/// // Decreasing: exp(−t) = 0.5 on [0, 1]; the bracket is expanded upwards to reach ln 2.
/// let t = invert_monotone(|t: f64| (-t).exp(), 0.5, 0.0, 0.5);
/// assert!((t - std::f64::consts::LN_2).abs() < 1e-12);
/// // Unreachable targets clamp to the nearest endpoint: tanh < 1 everywhere.
/// let t = invert_monotone(|t: f64| t.tanh(), 2.0, 0.0, 1.0);
/// assert_eq!(t, 1e6);
/// ```
pub fn invert_monotone<F: Fn(f64) -> f64>(f: F, y: f64, lo: f64, hi: f64) -> f64 {
    if y.is_nan() || lo.is_nan() || hi.is_nan() {
        return f64::NAN;
    }
    let (mut lo, mut hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    if lo == hi {
        return lo;
    }
    let (f_lo, f_hi) = (f(lo), f(hi));
    if f_lo.is_nan() || f_hi.is_nan() {
        return f64::NAN;
    }
    if f_lo == f_hi {
        return lo;
    }
    // g is increasing, with a root where f(t) = y.
    let sign = if f_hi > f_lo { 1.0 } else { -1.0 };
    let g = |t: f64| sign * (f(t) - y);
    let (mut g_lo, mut g_hi) = (sign * (f_lo - y), sign * (f_hi - y));
    if g_lo == 0.0 {
        return lo;
    }
    if g_hi == 0.0 {
        return hi;
    }

    if g_lo > 0.0 {
        // The root is below lo: move lo towards zero.
        let mut steps = 0;
        loop {
            if lo <= 0.0 || steps >= MAX_EXPAND {
                return lo;
            }
            steps += 1;
            let next = if lo > 1e-300 { 0.5 * lo } else { 0.0 };
            let g_next = g(next);
            if g_next.is_nan() {
                return lo;
            }
            if g_next == 0.0 {
                return next;
            }
            // Narrow the bracket to [next, lo].
            hi = lo;
            g_hi = g_lo;
            lo = next;
            g_lo = g_next;
            if g_lo < 0.0 {
                break;
            }
        }
    } else if g_hi < 0.0 {
        // The root is above hi: move hi upwards.
        let start = hi;
        let step = (hi - lo).max(1.0);
        let cap = if start > 0.0 {
            1e6 * start
        } else {
            start + 1e6 * step
        };
        let mut k = 0;
        loop {
            if hi >= cap || k >= MAX_EXPAND {
                return hi;
            }
            k += 1;
            let next = if start > 0.0 {
                2.0 * hi
            } else {
                start + step * (2f64.powi(k as i32) - 1.0)
            }
            .min(cap);
            let g_next = g(next);
            if g_next.is_nan() {
                return hi;
            }
            if g_next == 0.0 {
                return next;
            }
            lo = hi;
            g_lo = g_hi;
            hi = next;
            g_hi = g_next;
            if g_hi > 0.0 {
                break;
            }
        }
    }
    brent(g, lo, hi, g_lo, g_hi)
}

/// Brent's root finder on a bracket with `g(a) < 0 < g(b)` (or the reverse).
fn brent<G: Fn(f64) -> f64>(g: G, a: f64, b: f64, ga: f64, gb: f64) -> f64 {
    let (mut a, mut b, mut fa, mut fb) = (a, b, ga, gb);
    let (mut c, mut fc) = (a, fa);
    let mut d = b - a;
    let mut e = d;
    for _ in 0..MAX_ITER {
        if (fb > 0.0) == (fc > 0.0) {
            c = a;
            fc = fa;
            d = b - a;
            e = d;
        }
        if fc.abs() < fb.abs() {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        // Relative accuracy of a few ulps, far inside the promised 1e-12·max(1, |t|).
        let tol = 2.0 * f64::EPSILON * b.abs() + f64::MIN_POSITIVE;
        let m = 0.5 * (c - b);
        if m.abs() <= tol || fb == 0.0 {
            return b;
        }
        if e.abs() >= tol && fa.abs() > fb.abs() {
            // Interpolate: secant if a == c, else inverse quadratic.
            let s = fb / fa;
            let (mut p, mut q);
            if a == c {
                p = 2.0 * m * s;
                q = 1.0 - s;
            } else {
                let qa = fa / fc;
                let r = fb / fc;
                p = s * (2.0 * m * qa * (qa - r) - (b - a) * (r - 1.0));
                q = (qa - 1.0) * (r - 1.0) * (s - 1.0);
            }
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if 2.0 * p < (3.0 * m * q - (tol * q).abs()).min((e * q).abs()) {
                e = d;
                d = p / q;
            } else {
                d = m;
                e = m;
            }
        } else {
            d = m;
            e = m;
        }
        a = b;
        fa = fb;
        b += if d.abs() > tol { d } else { tol.copysign(m) };
        fb = g(b);
        if fb.is_nan() {
            return f64::NAN;
        }
    }
    b
}

/// The kernel integrals of a linear SDE at increasing times `ts`: `I(t) = ∫_0^t F` and
/// `K(t) = ∫_0^t g² e^{−2I}`, so that `a(t) = e^{I(t)}` and `b(t)² = a(t)² K(t)`.
///
/// One adaptive Dormand–Prince 5(4) pass over `[0, max ts]` (relative tolerance 1e-12 on
/// each component) instead of a quadrature of `g²/a²` whose every node needs a
/// quadrature of `F`. Entries are NaN from the first time the integration fails
/// (non-finite values or steps too small); `ts` must be increasing and `>= 0`.
///
/// ```
/// use sbdm_symbolic::numeric::kernel_integrals;
/// // VP with beta = 1 + t: I = -(t + t^2/2)/2, b^2 = 1 - e^{2I}.
/// let v = kernel_integrals(|s| -0.5 * (1.0 + s), |s| 1.0 + s, &[0.5, 1.0]);
/// let i = -0.5 * (1.0 + 0.5);
/// assert!((v[1].0 - i).abs() < 1e-11);
/// let b2 = (2.0 * v[1].0).exp() * v[1].1;
/// assert!((b2 - (1.0 - (2.0 * i).exp())).abs() < 1e-11);
/// ```
pub fn kernel_integrals<F: Fn(f64) -> f64, G: Fn(f64) -> f64>(
    f: F,
    g2: G,
    ts: &[f64],
) -> Vec<(f64, f64)> {
    // y = (I, K); y' = (F(s), g2(s) e^{-2 I}).
    let mut rhs = |s: f64, y: &[f64], dy: &mut [f64]| {
        dy[0] = f(s);
        dy[1] = g2(s) * (-2.0 * y[0]).exp();
    };
    let rtol = 1e-12;
    let end = ts.iter().cloned().fold(0.0, f64::max);
    let mut solver = Dopri5::new(rtol, 1e-300 + rtol * 1e-3, (end / 64.0).max(1e-6));
    let mut s = 0.0;
    let mut y = [0.0, 0.0];
    let mut failed = !ts.iter().all(|t| t.is_finite() && *t >= 0.0);
    ts.iter()
        .map(|&target| {
            failed = failed || solver.advance(&mut rhs, &mut s, &mut y, target).is_none();
            if failed {
                (f64::NAN, f64::NAN)
            } else {
                (y[0], y[1])
            }
        })
        .collect()
}

/// An adaptive Dormand–Prince 5(4) integrator of `y' = rhs(s, y)` over `f64` vectors:
/// a step is accepted when every component's error is within `rtol·max(|y|, |y_new|) +
/// atol`; the step size is kept between calls of [`advance`](Dopri5::advance), so one
/// solver integrates through a list of increasing times.
///
/// ```
/// use sbdm_symbolic::numeric::Dopri5;
/// // y' = -y: y(1) = e^-1.
/// let mut solver = Dopri5::new(1e-10, 1e-12, 0.1);
/// let (mut s, mut y) = (0.0, [1.0]);
/// solver.advance(&mut |_s: f64, y: &[f64], dy: &mut [f64]| dy[0] = -y[0], &mut s, &mut y, 1.0).unwrap();
/// assert!((y[0] - (-1.0f64).exp()).abs() < 1e-9);
/// ```
#[derive(Clone, Debug)]
pub struct Dopri5 {
    rtol: f64,
    atol: f64,
    h: f64,
    /// Right-hand side evaluations so far.
    pub evaluations: usize,
}

impl Dopri5 {
    /// A solver with these tolerances and first step size.
    pub fn new(rtol: f64, atol: f64, first_step: f64) -> Dopri5 {
        Dopri5 {
            rtol,
            atol,
            h: first_step,
            evaluations: 0,
        }
    }

    /// Integrates from `*s` to `target` (`≥ *s`), updating `s` and `y`; `None` when the
    /// state stops being finite, the step size collapses or a million steps do not reach
    /// the target.
    pub fn advance(
        &mut self,
        rhs: &mut impl FnMut(f64, &[f64], &mut [f64]),
        s: &mut f64,
        y: &mut [f64],
        target: f64,
    ) -> Option<()> {
        use dopri5::{A, C, E};
        let n = y.len();
        let mut k = vec![vec![0.0; n]; 7];
        let (mut yi, mut y5, mut err) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        let mut guard = 0usize;
        while *s < target {
            guard += 1;
            if guard > 1_000_000 {
                return None;
            }
            let step = self.h.min(target - *s);
            rhs(*s, y, &mut k[0]);
            for i in 1..7 {
                yi.copy_from_slice(y);
                for (j, kj) in k.iter().enumerate().take(i) {
                    for c in 0..n {
                        yi[c] += step * A[i][j] * kj[c];
                    }
                }
                rhs(*s + C[i] * step, &yi, &mut k[i]);
            }
            self.evaluations += 7;
            y5.copy_from_slice(y);
            err.iter_mut().for_each(|e| *e = 0.0);
            for (i, ki) in k.iter().enumerate() {
                let b = A[6].get(i).copied().unwrap_or(0.0);
                for c in 0..n {
                    y5[c] += step * b * ki[c];
                    err[c] += step * E[i] * ki[c];
                }
            }
            if !y5.iter().all(|v| v.is_finite()) {
                return None;
            }
            let ratio = (0..n)
                .map(|c| err[c].abs() / (self.rtol * y[c].abs().max(y5[c].abs()) + self.atol))
                .fold(0.0, f64::max);
            if ratio <= 1.0 {
                *s += step;
                y.copy_from_slice(&y5);
                if step < self.h {
                    // Shortened to land on the target: keep the controller's h.
                    continue;
                }
            }
            let factor = if ratio == 0.0 {
                5.0
            } else {
                (0.9 * ratio.powf(-0.2)).clamp(0.2, 5.0)
            };
            self.h = step * factor;
            if self.h < 1e-14 * target.abs().max(1.0) {
                return None;
            }
        }
        Some(())
    }
}

/// The Dormand–Prince 5(4) tableau (shared by [`kernel_integrals`] and the runtime's
/// RK45 sampler).
pub mod dopri5 {
    /// Nodes `c_i`.
    pub const C: [f64; 7] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];

    /// The Butcher tableau `a_ij` (row `i` has `i` entries); the last row is the 5th-order
    /// weights `b` (FSAL: `b_7 = 0`).
    pub const A: [&[f64]; 7] = [
        &[],
        &[1.0 / 5.0],
        &[3.0 / 40.0, 9.0 / 40.0],
        &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
        &[
            19372.0 / 6561.0,
            -25360.0 / 2187.0,
            64448.0 / 6561.0,
            -212.0 / 729.0,
        ],
        &[
            9017.0 / 3168.0,
            -355.0 / 33.0,
            46732.0 / 5247.0,
            49.0 / 176.0,
            -5103.0 / 18656.0,
        ],
        &[
            35.0 / 384.0,
            0.0,
            500.0 / 1113.0,
            125.0 / 192.0,
            -2187.0 / 6784.0,
            11.0 / 84.0,
        ],
    ];

    /// Error weights `e = b − b̂` (5th minus embedded 4th order).
    pub const E: [f64; 7] = [
        71.0 / 57600.0,
        0.0,
        -71.0 / 16695.0,
        71.0 / 1920.0,
        -17253.0 / 339200.0,
        22.0 / 525.0,
        -1.0 / 40.0,
    ];
}
