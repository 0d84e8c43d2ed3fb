//! The fused in-place step `x ← c0·x + c1·y (+ c2·z)` against the same update written
//! as separate tensor ops, and its errors.

use candle_core::{DType, Device, Tensor};
use sbdm_runtime::sampling::fused::{axpby, axpbypcz, axpbypcz_unfused, is_non_finite};

/// Sizes around the 8-lane width a vectorised loop works in, and larger ones.
const SIZES: [usize; 9] = [1, 3, 7, 8, 9, 31, 64, 1000, 4099];

#[path = "common/lcg.rs"]
mod lcg;
use lcg::values;

fn tensor(v: &[f64], dtype: DType) -> Tensor {
    Tensor::new(v, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn to_f64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
}

/// Per element `|got − want| ≤ 1e-6·(|c0·x| + |c1·y| + |c2·z|)`: relative to the terms
/// summed, so cancellation near zero does not inflate the ratio. (f32 rounding of a
/// three-term sum is a few ulps, ~4e-7 of that scale.)
fn assert_close(got: &[f64], want: &[f64], scale: &[f64], what: &str) {
    for (i, ((g, w), s)) in got.iter().zip(want).zip(scale).enumerate() {
        assert!(
            (g - w).abs() <= 1e-6 * s.max(f64::MIN_POSITIVE),
            "{what}: element {i}: fused {g} vs ops {w} (scale {s})"
        );
    }
}

#[test]
fn three_input_form_equals_separate_ops() {
    let (c0, c1, c2) = (0.93, -1.7, 0.31);
    for dtype in [DType::F32, DType::F64] {
        for n in SIZES {
            let (xv, yv, zv) = (values(n, 1), values(n, 2), values(n, 3));
            let (x, y, z) = (tensor(&xv, dtype), tensor(&yv, dtype), tensor(&zv, dtype));
            // The same update as five separate candle ops, out of place.
            let ops = ((x.affine(c0, 0.0).unwrap() + y.affine(c1, 0.0).unwrap()).unwrap()
                + z.affine(c2, 0.0).unwrap())
            .unwrap();
            let reference = axpbypcz_unfused(&x, c0, &y, c1, &z, c2).unwrap();
            axpbypcz(&x, c0, &y, c1, &z, c2).unwrap();
            assert_eq!(x.dtype(), dtype);
            let scale: Vec<f64> = (0..n)
                .map(|i| (c0 * xv[i]).abs() + (c1 * yv[i]).abs() + (c2 * zv[i]).abs())
                .collect();
            let what = format!("{dtype:?}, n = {n}");
            assert_close(&to_f64(&x), &to_f64(&ops), &scale, &what);
            assert_close(&to_f64(&x), &to_f64(&reference), &scale, &what);
        }
    }
}

#[test]
fn two_input_form_equals_separate_ops() {
    let (c0, c1) = (1.25, -0.5);
    for dtype in [DType::F32, DType::F64] {
        for n in SIZES {
            let (xv, yv) = (values(n, 4), values(n, 5));
            let (x, y) = (tensor(&xv, dtype), tensor(&yv, dtype));
            let ops = (x.affine(c0, 0.0).unwrap() + y.affine(c1, 0.0).unwrap()).unwrap();
            axpby(&x, c0, &y, c1).unwrap();
            let scale: Vec<f64> = (0..n)
                .map(|i| (c0 * xv[i]).abs() + (c1 * yv[i]).abs())
                .collect();
            assert_close(
                &to_f64(&x),
                &to_f64(&ops),
                &scale,
                &format!("{dtype:?}, n = {n}"),
            );
        }
    }
}

/// Batched `[N, D]` states (as samplers use) with strided sources, which are made
/// contiguous before the pass.
#[test]
fn matrices_and_strided_sources() {
    let (c0, c1, c2) = (0.5, 2.0, -1.0);
    let x = tensor(&values(35, 6), DType::F32).reshape((7, 5)).unwrap();
    let y_t = tensor(&values(35, 7), DType::F32).reshape((5, 7)).unwrap();
    let y = y_t.t().unwrap(); // [7, 5], not contiguous
    assert!(!y.is_contiguous());
    let z = tensor(&values(35, 8), DType::F32).reshape((7, 5)).unwrap();
    let ops = axpbypcz_unfused(&x, c0, &y, c1, &z, c2).unwrap();
    axpbypcz(&x, c0, &y, c1, &z, c2).unwrap();
    let (got, want) = (
        to_f64(&x.flatten_all().unwrap()),
        to_f64(&ops.flatten_all().unwrap()),
    );
    let scale: Vec<f64> = want.iter().map(|w| w.abs() + 4.0 * 3.5).collect();
    assert_close(&got, &want, &scale, "[7, 5]");
}

#[test]
fn shape_mismatch_is_an_error() {
    let x = tensor(&values(8, 1), DType::F32);
    let y9 = tensor(&values(9, 2), DType::F32);
    let y8 = tensor(&values(8, 2), DType::F32);
    assert!(axpby(&x, 1.0, &y9, 1.0).is_err());
    assert!(axpbypcz(&x, 1.0, &y8, 1.0, &y9, 1.0).is_err());
    assert!(axpbypcz(&x, 1.0, &y9, 1.0, &y8, 1.0).is_err());
    // Same element count, different shape.
    let m = x.reshape((2, 4)).unwrap();
    let m_t = tensor(&values(8, 3), DType::F32).reshape((4, 2)).unwrap();
    let err = axpby(&m, 1.0, &m_t, 1.0).unwrap_err();
    assert!(err.to_string().contains("differ"), "{err}");
    // Nothing was written.
    assert_eq!(to_f64(&x), to_f64(&tensor(&values(8, 1), DType::F32)));
}

#[test]
fn non_contiguous_x_is_an_error() {
    let base = tensor(&values(12, 1), DType::F32).reshape((3, 4)).unwrap();
    let x = base.t().unwrap(); // [4, 3], strided
    let y = tensor(&values(12, 2), DType::F32).reshape((4, 3)).unwrap();
    let err = axpby(&x, 1.0, &y, 1.0).unwrap_err();
    assert!(err.to_string().contains("contiguous"), "{err}");
    let err = axpbypcz(&x, 1.0, &y, 1.0, &y, 1.0).unwrap_err();
    assert!(err.to_string().contains("contiguous"), "{err}");
    assert_eq!(
        to_f64(&base.flatten_all().unwrap()),
        to_f64(&tensor(&values(12, 1), DType::F32))
    );
}

#[test]
fn non_finite_result_is_reported() {
    for dtype in [DType::F32, DType::F64] {
        // A NaN in a source.
        let x = tensor(&[1.0, 2.0, 3.0], dtype);
        let y = tensor(&[0.0, f64::NAN, 0.0], dtype);
        let err = axpby(&x, 1.0, &y, 1.0).unwrap_err();
        assert!(is_non_finite(&err), "{dtype:?}: {err}");
        // Overflow from finite inputs.
        let x = tensor(&[1.0, 2.0, 3.0], dtype);
        let y = tensor(&[1.0, 1.0, 1e300], dtype);
        let z = tensor(&[0.0, 0.0, 0.0], dtype);
        let err = axpbypcz(&x, 1.0, &y, 1e300, &z, 1.0).unwrap_err();
        assert!(is_non_finite(&err), "{dtype:?}: {err}");
        // An infinity in the noise.
        let x = tensor(&[1.0, 2.0], dtype);
        let y = tensor(&[1.0, 1.0], dtype);
        let z = tensor(&[f64::INFINITY, 0.0], dtype);
        let err = axpbypcz(&x, 1.0, &y, 1.0, &z, 0.5).unwrap_err();
        assert!(is_non_finite(&err), "{dtype:?}: {err}");
    }
    // Finite results are not flagged.
    let x = tensor(&[1.0, 2.0], DType::F32);
    let y = tensor(&[1.0, 1.0], DType::F32);
    assert!(axpby(&x, 1.0, &y, 1.0).is_ok());
}
