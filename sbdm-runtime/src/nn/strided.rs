//! Matrix products on the CPU in f32 through `gemm`, the kernel candle's own matmul
//! calls, with each operand read and the result written where it lies (any row and
//! column strides): candle's matmul returns a fresh zero-filled tensor, and the
//! hand-written backward passes of the convolution and of the fused linear layers would
//! otherwise pay for transposed copies and zero-filled products.

use candle_core::{CpuStorage, Layout, Result, Storage, Tensor};

/// The threads a layer's products may use: candle's matmul thread count
/// (`RAYON_NUM_THREADS`), one in the `sbdm` binaries, which run batch parts on threads
/// of their own instead.
pub(super) fn matmul_threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// A contiguous f32 CPU storage's values; `op` names the caller in the error.
pub(super) fn values<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    match (l.contiguous_offsets(), s) {
        (Some((a, b)), CpuStorage::F32(v)) => Ok(&v[a..b]),
        _ => candle_core::bail!("{op}: expected contiguous f32 values"),
    }
}

/// Calls `f` with a contiguous f32 CPU tensor's values, borrowed.
pub(super) fn with_values<R>(
    t: &Tensor,
    op: &str,
    f: impl FnOnce(&[f32]) -> Result<R>,
) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(s) = &*storage else {
        candle_core::bail!("{op}: expected a CPU tensor");
    };
    f(values(s, layout, op)?)
}

/// A read-only strided view of a matrix in a slice.
#[derive(Clone, Copy, Debug)]
pub(super) struct Matrix<'a> {
    values: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Matrix<'a> {
    pub(super) fn row_major(values: &'a [f32], rows: usize, cols: usize) -> Self {
        Matrix {
            values,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose (the same values).
    pub(super) fn t(self) -> Self {
        Matrix {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// The first `rows` rows.
    pub(super) fn top(self, rows: usize) -> Self {
        Matrix {
            rows: rows.min(self.rows),
            ..self
        }
    }

    /// Whether every element lies inside `len` values with these strides.
    fn fits(rows: usize, cols: usize, (rs, cs): (usize, usize), len: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
    }
}

/// `dst ← lhs·rhs`, or `dst ← dst + lhs·rhs` with `accumulate`, `dst` being
/// `lhs.rows × rhs.cols` with strides `(row, column)`: one call of `gemm`, on the calling
/// thread or, with `threads > 1`, split over that many of rayon's.
pub(super) fn product(
    dst: &mut [f32],
    dst_strides: (usize, usize),
    accumulate: bool,
    lhs: Matrix,
    rhs: Matrix,
    threads: usize,
) {
    let (m, n, k) = (lhs.rows, rhs.cols, lhs.cols);
    assert!(
        rhs.rows == k
            && Matrix::fits(m, n, dst_strides, dst.len())
            && Matrix::fits(m, k, (lhs.row_stride, lhs.col_stride), lhs.values.len())
            && Matrix::fits(k, n, (rhs.row_stride, rhs.col_stride), rhs.values.len()),
        "strided product: {m}×{k} · {}×{n} out of bounds",
        rhs.rows
    );
    if m == 0 || n == 0 {
        return;
    }
    #[allow(unsafe_code, reason = "gemm takes raw pointers and strides")]
    // SAFETY: the assertion above keeps every element `gemm` touches inside its slice
    // (the strides are non-negative), `dst` is borrowed mutably and the others shared,
    // so nothing aliases; `gemm` reads `dst` only when `read_dst` is set.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_strides.1 as isize,
            dst_strides.0 as isize,
            accumulate,
            lhs.values.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.values.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            },
        )
    }
}
