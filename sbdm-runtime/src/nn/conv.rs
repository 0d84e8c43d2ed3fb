//! The U-Net's 2-D convolution: on the CPU in f32, each image's patches (im2col) and
//! three matrix products, one node of the graph with its backward pass written out.
//!
//! For one image with patch matrix `P = [im2col(x); 1]` (`[C·k² + 1, Ho·Wo]`, the row of
//! ones carrying the bias) and `M = [W | b]` (`[out, C·k² + 1]`):
//!
//! ```text
//! forward    y       = M·P(x)           written straight into y's [out, Ho, Wo]
//! backward   [∂W|∂b] += g·P(x)ᵀ          summed over the images in place
//!            ∂x      = W̃·P(g)            stride 1: a convolution of g, written in place
//!            ∂x      = col2im(Wᵀ·g)      stride 2: the adjoint of im2col, added into ∂x
//! ```
//!
//! (`W̃` is `W` flipped in space and transposed: [`Patches::transposed`].)
//!
//! Going image by image keeps `P` (at most ~1 MB here) in cache and lets every product
//! be read and written where it lies through the strides of `gemm`, the kernel candle's
//! own matmul calls: no whole-batch patch matrix, no transposed or concatenated copies,
//! no zero-filled product buffers, no gradient sum made of separate adds. Where a plane
//! is small (8×8, 4×4) a few images share one product (a group of 256 columns), so that
//! the weights `gemm` packs at each call are packed once for them; their rows of `y` and
//! `g` are then regrouped, which is cheap beside the product. For the size-keeping
//! stride-1 convolutions (all the 3×3 ones but the downsampling) a tap's patch row is the
//! image plane shifted, so im2col and col2im are one copy or one run of adds per row and
//! a column of zeros ([`Patches::shifted`]). The backward pass makes an image's patches
//! again rather than keeping them from the forward pass. candle's own CPU convolution
//! backward (a direct transposed convolution) made a U-Net training step about twice as
//! slow; on other devices and dtypes `Conv` is candle's `conv2d`.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};
use candle_nn::{Init, VarBuilder};
use rayon::prelude::*;

use super::strided::{matmul_threads, product, values, with_values, Matrix};

/// A 2-D convolution (`weight [out, in, k, k]`, `bias [out]`, the variable names and
/// initialisation of `candle_nn::conv2d`), padding `k/2`.
#[derive(Clone, Debug)]
pub(crate) struct Conv {
    pub(crate) weight: Tensor,
    pub(crate) bias: Tensor,
    stride: usize,
}

impl Conv {
    /// A `k×k` convolution initialised like `candle_nn::conv2d`.
    pub(crate) fn new(
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let bound = 1.0 / (cin as f64).sqrt();
        let weight = vb.get_with_hints(
            (cout, cin, k, k),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bias = vb.get_with_hints(
            cout,
            "bias",
            Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        Ok(Conv {
            weight,
            bias,
            stride,
        })
    }

    /// A `k×k` stride-1 convolution, weights and bias zero.
    pub(crate) fn zeros(cin: usize, cout: usize, k: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Conv {
            weight: vb.get_with_hints((cout, cin, k, k), "weight", Init::Const(0.))?,
            bias: vb.get_with_hints(cout, "bias", Init::Const(0.))?,
            stride: 1,
        })
    }

    /// `x [N, in, H, W]` → `[N, out, Ho, Wo]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (cout, _, k, _) = self.weight.dims4()?;
        if !(x.device().is_cpu() && x.dtype() == DType::F32) {
            let y = x.conv2d(&self.weight, k / 2, self.stride, 1, 1)?;
            return y.broadcast_add(&self.bias.reshape((1, cout, 1, 1))?);
        }
        let op = ConvOp {
            k,
            stride: self.stride,
        };
        x.contiguous()?.apply_op3(&self.weight, &self.bias, op)
    }
}

/// The op's name, in its errors too.
const OP: &str = "sbdm-conv";

/// The graph node of a CPU f32 convolution (see the module's documentation).
#[derive(Clone, Copy, Debug)]
struct ConvOp {
    k: usize,
    stride: usize,
}

impl ConvOp {
    fn patches(&self, x: &Shape) -> Result<Patches> {
        let (_, c, h, w) = x.dims4()?;
        Patches::new(self.k, self.stride, (c, h, w))
    }
}

impl CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        OP
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let patches = self.patches(xl.shape())?;
        let (n, c, ..) = xl.shape().dims4()?;
        let (cout, cin, kh, kw) = wl.shape().dims4()?;
        if (cin, kh, kw) != (c, self.k, self.k) || bl.dims() != [cout] {
            candle_core::bail!(
                "{OP}: x {:?}, weight {:?} and bias {:?} do not fit a {k}×{k} convolution",
                xl.dims(),
                wl.dims(),
                bl.dims(),
                k = self.k
            );
        }
        let m = weight_matrix(values(ws, wl, OP)?, values(bs, bl, OP)?, cout);
        let mut y = vec![0f32; n * cout * patches.plane()];
        patches.forward(&Parts::new(n), values(xs, xl, OP)?, &m, &mut y);
        let (ho, wo) = patches.out;
        Ok((CpuStorage::F32(y), Shape::from((n, cout, ho, wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let patches = self.patches(x.shape())?;
        let (cout, ..) = weight.dims4()?;
        let taps = patches.rows() - 1;
        let (x, grad) = (x.detach().contiguous()?, grad.detach().contiguous()?);
        let (weight, bias) = (weight.detach().contiguous()?, bias.detach().contiguous()?);
        let m = with_values(&weight, OP, |w| {
            with_values(&bias, OP, |b| Ok(weight_matrix(w, b, cout)))
        })?;
        let (gx, gm) = with_values(&x, OP, |xv| {
            let parts = Parts::new(x.dim(0)?);
            with_values(&grad, OP, |gv| {
                Ok(patches.backward(&parts, xv, gv, &m, cout))
            })
        })?;
        let dev = x.device();
        let gx = Tensor::from_vec(gx, x.shape(), dev)?;
        let gm = Tensor::from_vec(gm, (cout, taps + 1), dev)?;
        let gweight = gm.narrow(1, 0, taps)?.reshape(weight.shape())?;
        let gbias = gm.narrow(1, taps, 1)?.reshape(cout)?;
        Ok((Some(gx), Some(gweight), Some(gbias)))
    }
}

/// `[W | b]`, `[out, in·k² + 1]`, row-major.
fn weight_matrix(weight: &[f32], bias: &[f32], cout: usize) -> Vec<f32> {
    let taps = weight.len() / cout.max(1);
    let mut m = Vec::with_capacity(weight.len() + bias.len());
    for (row, &b) in weight.chunks_exact(taps.max(1)).zip(bias) {
        m.extend_from_slice(row);
        m.push(b);
    }
    m
}

/// The patch geometry of a `k×k` convolution, padding `k/2`, over `[C, H, W]` images.
#[derive(Clone, Copy, Debug)]
struct Patches {
    k: usize,
    stride: usize,
    /// `(C, H, W)`.
    input: (usize, usize, usize),
    /// `(Ho, Wo)`.
    out: (usize, usize),
}

impl Patches {
    fn new(k: usize, stride: usize, (c, h, w): (usize, usize, usize)) -> Result<Self> {
        let p = k / 2;
        if h + 2 * p < k || w + 2 * p < k || stride == 0 {
            candle_core::bail!("conv: a {k}×{k} kernel does not fit a {h}×{w} input");
        }
        let out = ((h + 2 * p - k) / stride + 1, (w + 2 * p - k) / stride + 1);
        Ok(Patches {
            k,
            stride,
            input: (c, h, w),
            out,
        })
    }

    /// Rows of an image's patch matrix: `C·k²` taps and the row of ones.
    fn rows(&self) -> usize {
        self.input.0 * self.k * self.k + 1
    }

    /// Output pixels, the patch matrix's columns.
    fn plane(&self) -> usize {
        self.out.0 * self.out.1
    }

    /// Values of one input image.
    fn image(&self) -> usize {
        self.input.0 * self.input.1 * self.input.2
    }

    /// Images per product: enough that a product has [`GROUP_COLUMNS`] columns where the
    /// planes are small (the 4×4 and 8×8 levels), so that packing the weights, which
    /// `gemm` does at every call, is paid once for several images.
    fn group(&self) -> usize {
        (GROUP_COLUMNS / self.plane().max(1)).max(1)
    }

    /// The patch matrix of `images` images, `[rows, images·plane]`: zeros but for its last
    /// row of ones. [`gather`] writes only in-bounds taps, so its padding stays zero for
    /// every group of as many images after.
    ///
    /// [`gather`]: Patches::gather
    fn buffer(&self, images: usize) -> Vec<f32> {
        let width = images * self.plane();
        let mut p = vec![0f32; self.rows() * width];
        p[(self.rows() - 1) * width..].fill(1.0);
        p
    }

    /// Calls `f(input offset, patch offset, length)` for every in-bounds run of one
    /// `[H, W]` plane and one tap `(dy, dx)`, output row by output row.
    #[inline(always)]
    fn for_each_run(&self, (dy, dx): (usize, usize), mut f: impl FnMut(usize, usize, usize)) {
        let (s, p) = (self.stride, self.k / 2);
        let (_, h, w) = self.input;
        let (ho, wo) = self.out;
        // ox is in bounds when 0 ≤ ox·s + dx − p < w.
        let ox0 = p.saturating_sub(dx).div_ceil(s);
        let ox1 = if w + p > dx {
            (w + p - dx - 1) / s + 1
        } else {
            0
        }
        .min(wo);
        for oy in 0..ho {
            let iy = oy * s + dy;
            if iy < p || iy - p >= h || ox0 >= ox1 {
                continue;
            }
            f((iy - p) * w + ox0 * s + dx - p, oy * wo + ox0, ox1 - ox0);
        }
    }

    /// Tap row `r` of the patch matrix (`r = (c·k + dy)·k + dx`): its input channel `c`
    /// and its offset `(dy, dx)`.
    #[inline(always)]
    fn tap(&self, r: usize) -> (usize, (usize, usize)) {
        let d = r % (self.k * self.k);
        (r / (self.k * self.k), (d / self.k, d % self.k))
    }

    /// A stride-1 convolution with odd `k` keeps the input's size, and each tap's patch
    /// row is then the input plane shifted by `(dy − p)·W + (dx − p)` values, but for the
    /// columns that wrap round to the other end of a neighbouring row: one copy (or one run
    /// of adds) and a column of zeros instead of a short run per output row.
    fn shifted(&self, (dy, dx): (usize, usize)) -> Option<ShiftedTap> {
        let (k, p) = (self.k, self.k / 2);
        let (_, h, w) = self.input;
        if self.stride != 1 || k % 2 == 0 || p >= h || p >= w {
            return None;
        }
        let (h, w) = (h as isize, w as isize);
        let (sy, sx) = (dy as isize - p as isize, dx as isize - p as isize);
        let offset = sy * w + sx;
        // Output rows whose input row exists, cut where the shifted index leaves the plane
        // (those ends are wrapped columns too).
        let a = ((-sy).max(0) * w).max(-offset);
        let b = ((h - sy).min(h) * w).min(h * w - offset);
        let wrapped = if sx < 0 { (0, -sx) } else { (w - sx, w) };
        Some(ShiftedTap {
            span: (a as usize, b.max(a) as usize),
            source: (a + offset) as usize,
            wrapped: (wrapped.0 as usize, wrapped.1 as usize),
            width: w as usize,
        })
    }

    /// Writes the in-bounds taps of `image` (`[C, H, W]`) into the columns `[at, at +
    /// plane)` of `cols` (a [`buffer`] whose rows are `width` long): row `(c·k + dy)·k +
    /// dx`, column `at + oy·Wo + ox` is `image[c, oy·s + dy − p, ox·s + dx − p]`.
    ///
    /// [`buffer`]: Patches::buffer
    fn gather(&self, image: &[f32], cols: &mut [f32], (width, at): (usize, usize)) {
        let (s, plane, channel) = (self.stride, self.plane(), self.input.1 * self.input.2);
        for r in 0..self.rows() - 1 {
            let (ci, d) = self.tap(r);
            let src = &image[ci * channel..(ci + 1) * channel];
            let row = &mut cols[r * width + at..][..plane];
            if let Some(tap) = self.shifted(d) {
                let (a, b) = tap.span;
                row[a..b].copy_from_slice(&src[tap.source..tap.source + b - a]);
                tap.zero_wrapped(row);
                continue;
            }
            self.for_each_run(d, |i, o, len| {
                if s == 1 {
                    row[o..o + len].copy_from_slice(&src[i..i + len]);
                } else {
                    for (j, v) in row[o..o + len].iter_mut().enumerate() {
                        *v = src[i + j * s];
                    }
                }
            });
        }
    }

    /// Adds the columns `[at, at + plane)` of the tap rows of a patch gradient (`[C·k²,
    /// width]`) onto the image's gradient (`[C, H, W]`): the adjoint of
    /// [`gather`](Patches::gather). The padding's entries of `cols` are set to zero on the
    /// way.
    fn scatter_add(&self, cols: &mut [f32], (width, at): (usize, usize), image: &mut [f32]) {
        let (s, plane, channel) = (self.stride, self.plane(), self.input.1 * self.input.2);
        // The row sums compiled for AVX2 where the CPU has it (the same results).
        crate::simd::vectorised(
            #[inline(always)]
            || {
                for r in 0..self.rows() - 1 {
                    let (ci, d) = self.tap(r);
                    let dst = &mut image[ci * channel..(ci + 1) * channel];
                    let row = &mut cols[r * width + at..][..plane];
                    if let Some(tap) = self.shifted(d) {
                        // The padding's gradient dropped, then one run of adds.
                        tap.zero_wrapped(row);
                        let (a, b) = tap.span;
                        let dst = &mut dst[tap.source..tap.source + b - a];
                        for (d, &g) in dst.iter_mut().zip(&row[a..b]) {
                            *d += g;
                        }
                        continue;
                    }
                    self.for_each_run(
                        d,
                        #[inline(always)]
                        |i, o, len| {
                            let row = &row[o..o + len];
                            if s == 1 {
                                for (d, &g) in dst[i..i + len].iter_mut().zip(row) {
                                    *d += g;
                                }
                            } else {
                                for (j, &g) in row.iter().enumerate() {
                                    dst[i + j * s] += g;
                                }
                            }
                        },
                    );
                }
            },
        );
    }

    /// The patches of a group of images (`[nc, C, H, W]`) into `cols`, a [`buffer`] for
    /// `nc` images with that count beside it (made anew when the count changes, i.e. for
    /// a last, smaller group); returns `nc` and the matrix's width `nc·plane`.
    ///
    /// [`buffer`]: Patches::buffer
    fn gather_group(&self, images: &[f32], cols: &mut (Vec<f32>, usize)) -> (usize, usize) {
        let nc = images.len() / self.image().max(1);
        if nc != cols.1 {
            *cols = (self.buffer(nc), nc);
        }
        let width = nc * self.plane();
        for (b, image) in images.chunks_exact(self.image()).enumerate() {
            self.gather(image, &mut cols.0, (width, b * self.plane()));
        }
        (nc, width)
    }

    /// `y[n] = M·P(x[n])` for every image (`y` is `[N, out, Ho, Wo]`), the parts on
    /// threads, each a [`group`](Patches::group) of images at a time.
    fn forward(&self, parts: &Parts, x: &[f32], m: &[f32], y: &mut [f32]) {
        let (rows, plane, image) = (self.rows(), self.plane(), self.image());
        let cout = m.len() / rows;
        let group = self.group();
        let xs: Vec<&[f32]> = parts.split(x, image);
        let ys: Vec<&mut [f32]> = parts.split_mut(y, cout * plane);
        parts.run(xs.into_iter().zip(ys), |(x, y)| {
            let mut cols = (Vec::new(), 0);
            let mut product_columns = vec![0f32; if group > 1 { cout * group * plane } else { 0 }];
            for (x, y) in x
                .chunks(group * image)
                .zip(y.chunks_mut(group * cout * plane))
            {
                let (nc, width) = self.gather_group(x, &mut cols);
                let (lhs, rhs) = (
                    Matrix::row_major(m, cout, rows),
                    Matrix::row_major(&cols.0, rows, width),
                );
                if nc == 1 {
                    product(y, (plane, 1), false, lhs, rhs, 1);
                } else {
                    let out = &mut product_columns[..cout * width];
                    product(out, (width, 1), false, lhs, rhs, 1);
                    columns_to_images(out, (nc, cout, plane), y);
                }
            }
        });
    }

    /// `(∂x, [∂W | ∂b])` from the output gradient `g` (`[N, out, Ho, Wo]`), the parts on
    /// threads, each a [`group`](Patches::group) of images at a time, and their weight
    /// gradients summed in order.
    fn backward(
        &self,
        parts: &Parts,
        x: &[f32],
        g: &[f32],
        m: &[f32],
        cout: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let (rows, plane, image, taps) = (self.rows(), self.plane(), self.image(), self.rows() - 1);
        let (cin, group) = (self.input.0, self.group());
        let transposed = self.transposed(cout, m);
        let mut gx = vec![0f32; x.len()];
        let xs: Vec<&[f32]> = parts.split(x, image);
        let gs: Vec<&[f32]> = parts.split(g, cout * plane);
        let gxs: Vec<&mut [f32]> = parts.split_mut(&mut gx, image);
        let sums = parts.run(xs.into_iter().zip(gs).zip(gxs), |((x, g), gx)| {
            let (mut cols, mut g_cols) = ((Vec::new(), 0), (Vec::new(), 0));
            let mut g_columns = vec![0f32; if group > 1 { cout * group * plane } else { 0 }];
            let mut gx_columns = vec![0f32; if group > 1 { cin * group * plane } else { 0 }];
            let mut grad_cols = Vec::new();
            let mut gm = vec![0f32; cout * rows];
            let groups = x
                .chunks(group * image)
                .zip(g.chunks(group * cout * plane))
                .zip(gx.chunks_mut(group * image));
            for (gi, ((x, g_images), gx)) in groups.enumerate() {
                let (nc, width) = self.gather_group(x, &mut cols);
                let g = if nc == 1 {
                    Matrix::row_major(g_images, cout, plane)
                } else {
                    let columns = &mut g_columns[..cout * width];
                    images_to_columns(g_images, (nc, cout, plane), columns);
                    Matrix::row_major(columns, cout, width)
                };
                // [∂W | ∂b] += g·Pᵀ
                let cols_t = Matrix::row_major(&cols.0, rows, width).t();
                product(&mut gm, (rows, 1), gi > 0, g, cols_t, 1);
                match &transposed {
                    // ∂x = W̃·P(g), written in place.
                    Some((g_patches, flipped)) => {
                        g_patches.gather_group(g_images, &mut g_cols);
                        let lhs = Matrix::row_major(flipped, cin, cout * self.k * self.k);
                        let rhs = Matrix::row_major(&g_cols.0, g_patches.rows(), width)
                            .top(g_patches.rows() - 1);
                        if nc == 1 {
                            product(gx, (plane, 1), false, lhs, rhs, 1);
                        } else {
                            let out = &mut gx_columns[..cin * width];
                            product(out, (width, 1), false, lhs, rhs, 1);
                            columns_to_images(out, (nc, cin, plane), gx);
                        }
                    }
                    // ∂P = Wᵀ·g over the tap rows (M's bias column left out), then col2im.
                    None => {
                        let w_t = Matrix::row_major(m, cout, rows).t().top(taps);
                        grad_cols.resize(taps * width, 0.0);
                        product(&mut grad_cols, (width, 1), false, w_t, g, 1);
                        for (bi, gx) in gx.chunks_exact_mut(image).enumerate() {
                            self.scatter_add(&mut grad_cols, (width, bi * plane), gx);
                        }
                    }
                }
            }
            gm
        });
        let mut gm = vec![0f32; cout * rows];
        for part in sums {
            for (s, v) in gm.iter_mut().zip(part) {
                *s += v;
            }
        }
        (gx, gm)
    }

    /// For a stride-1 convolution with odd `k` (padding `k/2`, the output the input's
    /// size), `∂x` is itself such a convolution, of `g` with the weights flipped in space
    /// and transposed, `W̃[c, (o·k + dy)·k + dx] = W[o, c, k−1−dy, k−1−dx]`:
    /// `∂x[c, i] = Σ W[o, c, d]·g[o, i − d + p] = Σ W̃[c, (o, d')]·g[o, i + d' − p]`. So the
    /// backward pass gathers `g`'s patches (`out·k²` rows) and writes `∂x = W̃·P(g)` in
    /// place, instead of making the patch gradient (`C·k²` rows, the larger where `C >
    /// out`) and scattering it. Returns `g`'s patch geometry and `W̃`, or `None` otherwise.
    fn transposed(&self, cout: usize, m: &[f32]) -> Option<(Patches, Vec<f32>)> {
        let (k, rows) = (self.k, self.rows());
        let (cin, h, w) = self.input;
        if self.stride != 1 || k % 2 == 0 || self.out != (h, w) {
            return None;
        }
        let patches = Patches::new(k, 1, (cout, h, w)).ok()?;
        let mut flipped = vec![0f32; cin * cout * k * k];
        for (c, row) in flipped.chunks_exact_mut(cout * k * k).enumerate() {
            for (o, taps) in row.chunks_exact_mut(k * k).enumerate() {
                for (d, v) in taps.iter_mut().enumerate() {
                    // Tap d' = (dy, dx) reads W's tap (k−1−dy, k−1−dx), i.e. k²−1−d.
                    *v = m[o * rows + c * k * k + (k * k - 1 - d)];
                }
            }
        }
        Some((patches, flipped))
    }
}

/// The columns a product of a group's patches has: 256, one 16×16 image.
const GROUP_COLUMNS: usize = 256;

/// The offsets of each `plane`-long block, channel `o` of image `b`, in the images
/// `[nc, out, plane]` and in a group's product `[out, nc·plane]` (image after image along
/// the columns).
fn channel_blocks(
    (nc, cout, plane): (usize, usize, usize),
) -> impl Iterator<Item = (usize, usize)> {
    (0..nc)
        .flat_map(move |b| (0..cout).map(move |o| ((b * cout + o) * plane, (o * nc + b) * plane)))
}

/// A group's product `[out, nc·plane]` → the images `[nc, out, plane]`.
fn columns_to_images(columns: &[f32], dims: (usize, usize, usize), images: &mut [f32]) {
    let plane = dims.2;
    for (i, c) in channel_blocks(dims) {
        images[i..i + plane].copy_from_slice(&columns[c..c + plane]);
    }
}

/// The images `[nc, out, plane]` → `[out, nc·plane]`, the inverse of [`columns_to_images`].
fn images_to_columns(images: &[f32], dims: (usize, usize, usize), columns: &mut [f32]) {
    let plane = dims.2;
    for (i, c) in channel_blocks(dims) {
        columns[c..c + plane].copy_from_slice(&images[i..i + plane]);
    }
}

/// A tap of a size-keeping stride-1 convolution ([`Patches::shifted`]).
#[derive(Clone, Copy, Debug)]
struct ShiftedTap {
    /// The patch row's indices `[a, b)` read from the input.
    span: (usize, usize),
    /// The input index that patch index `a` reads.
    source: usize,
    /// The output columns `[c0, c1)` that wrap: padding.
    wrapped: (usize, usize),
    /// The plane's width.
    width: usize,
}

impl ShiftedTap {
    /// Sets the wrapped columns of every row of a patch row to zero.
    #[inline(always)]
    fn zero_wrapped(&self, row: &mut [f32]) {
        // Column by column: a strided loop (a `fill` per row was a `memset` call for one
        // or two values).
        for c in self.wrapped.0..self.wrapped.1 {
            for v in row.iter_mut().skip(c).step_by(self.width) {
                *v = 0.0;
            }
        }
    }
}

/// The batch split into contiguous runs of images, one per matmul thread (candle's
/// `get_num_threads`, i.e. `RAYON_NUM_THREADS`): a training step that already runs its
/// batch parts on threads of its own sets it to 1 and gets one run, on its own thread.
struct Parts {
    images: usize,
    per: usize,
}

impl Parts {
    fn new(images: usize) -> Self {
        let threads = matmul_threads().clamp(1, images.max(1));
        Parts {
            images,
            per: images.div_ceil(threads).max(1),
        }
    }

    fn split<'a>(&self, v: &'a [f32], each: usize) -> Vec<&'a [f32]> {
        v[..self.images * each]
            .chunks(self.per * each.max(1))
            .collect()
    }

    fn split_mut<'a>(&self, v: &'a mut [f32], each: usize) -> Vec<&'a mut [f32]> {
        v[..self.images * each]
            .chunks_mut(self.per * each.max(1))
            .collect()
    }

    /// `f` over the runs, on rayon's pool when there is more than one; results in order.
    fn run<T: Send, R: Send>(
        &self,
        runs: impl Iterator<Item = T>,
        f: impl Fn(T) -> R + Sync + Send,
    ) -> Vec<R> {
        let runs: Vec<T> = runs.collect();
        if runs.len() > 1 {
            runs.into_par_iter().map(f).collect()
        } else {
            runs.into_iter().map(f).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{seeded_randn as randn, seeded_varbuilder};
    use candle_core::{Device, Var};
    use candle_nn::VarMap;

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
    }

    /// The convolution against candle's `conv2d`: values and the gradients of `x`, the
    /// weight and the bias. The 8×8 case with 9 images goes in groups of 4, 4 and 1
    /// (a partial group remakes the patch buffer).
    #[test]
    fn conv_matches_candle() -> Result<()> {
        let dev = Device::Cpu;
        for (k, stride, h, w, n, cin) in [
            (3, 1, 8, 8, 2, 3),
            (3, 2, 8, 8, 2, 3),
            (3, 2, 7, 5, 2, 3),
            (1, 1, 6, 3, 2, 3),
            (3, 1, 1, 2, 2, 3),
            (3, 1, 2, 3, 2, 3),
            (5, 1, 6, 7, 2, 3),
            (5, 1, 2, 9, 2, 3),
            (3, 1, 8, 8, 9, 4),
            (3, 1, 16, 16, 40, 16),
            (3, 1, 16, 16, 9, 16),
        ] {
            let vm = VarMap::new();
            let vb = seeded_varbuilder(&vm, 3, DType::F32, &dev);
            let conv = Conv::new(cin, 4, k, stride, vb.pp("c"))?;
            let x = Var::from_tensor(&randn(1, &[n, cin, h, w])?)?;
            let ours = conv.forward(x.as_tensor())?;
            let theirs = x
                .conv2d(&conv.weight, k / 2, stride, 1, 1)?
                .broadcast_add(&conv.bias.reshape((1, 4, 1, 1))?)?;
            assert_eq!(ours.dims(), theirs.dims(), "k {k} s {stride} {h}×{w}");
            assert!(max_diff(&ours, &theirs)? < 1e-5);
            let r = randn(2, ours.dims())?;
            let g1 = (ours * &r)?.sum_all()?.backward()?;
            let g2 = (theirs * &r)?.sum_all()?.backward()?;
            for t in [x.as_tensor(), &conv.weight, &conv.bias] {
                let (a, b) = (g1.get(t).unwrap(), g2.get(t).unwrap());
                // The weight gradient sums up to n·Ho·Wo = 10 240 f32 terms in another
                // order than candle: relative to the gradient's size, √terms·ε ≈ 6e-6;
                // the small cases within 1e-4 as they always were.
                let scale = b.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
                let diff = max_diff(a, b)?;
                let tol = if n > 2 { 1e-5 * scale } else { 1e-4 };
                assert!(
                    diff < tol,
                    "k {k} s {stride} {h}×{w}: {:?} differ by {diff} at scale {scale}",
                    t.dims()
                );
            }
        }
        Ok(())
    }

    /// The batch split over threads gives the single run's values and input gradient
    /// bit for bit, and its weight gradient up to the order of the sum over the parts.
    #[test]
    fn parts_match_one_run() -> Result<()> {
        let p = Patches::new(3, 1, (5, 6, 7))?;
        let (n, cout) = (7, 4);
        let x: Vec<f32> = randn(1, &[n, 5, 6, 7])?.flatten_all()?.to_vec1()?;
        let m: Vec<f32> = randn(2, &[cout * p.rows()])?.to_vec1()?;
        let g: Vec<f32> = randn(3, &[n * cout * p.plane()])?.to_vec1()?;
        let run = |per: usize| {
            let parts = Parts { images: n, per };
            let mut y = vec![0f32; n * cout * p.plane()];
            p.forward(&parts, &x, &m, &mut y);
            let (gx, gm) = p.backward(&parts, &x, &g, &m, cout);
            (y, gx, gm)
        };
        let (y1, gx1, gm1) = run(n);
        let (y4, gx4, gm4) = run(2); // 4 parts: 2, 2, 2, 1 images
        assert_eq!(y1, y4);
        assert_eq!(gx1, gx4);
        let scale = gm1.iter().fold(0f32, |a, v| a.max(v.abs()));
        for (a, b) in gm1.iter().zip(&gm4) {
            // 7 images of 42 pixels each: a few ulps of the largest term.
            assert!((a - b).abs() <= 1e-5 * scale, "{a} vs {b}");
        }
        Ok(())
    }

    /// Shapes that do not fit are an error naming them, not a panic.
    #[test]
    fn mismatched_shapes_are_errors() -> Result<()> {
        let op = ConvOp { k: 3, stride: 1 };
        let x = randn(1, &[2, 3, 5, 5])?;
        for (w, b) in [
            (randn(2, &[4, 2, 3, 3])?, randn(3, &[4])?),
            (randn(2, &[4, 3, 1, 1])?, randn(3, &[4])?),
            (randn(2, &[4, 3, 3, 3])?, randn(3, &[5])?),
        ] {
            let e = x.apply_op3_no_bwd(&w, &b, &op).unwrap_err().to_string();
            assert!(e.contains("do not fit"), "{e}");
        }
        Ok(())
    }

    /// `⟨gather(x), g⟩ = ⟨x, scatter_add(g)⟩`: col2im is the adjoint (the backward pass).
    #[test]
    fn scatter_is_the_adjoint_of_gather() -> Result<()> {
        for stride in [1, 2] {
            let p = Patches::new(3, stride, (3, 7, 6))?;
            let x: Vec<f32> = randn(1, &[p.image()])?.to_vec1()?;
            let mut cols = p.buffer(1);
            p.gather(&x, &mut cols, (p.plane(), 0));
            let taps = (p.rows() - 1) * p.plane();
            let g: Vec<f32> = randn(2, &[taps])?.to_vec1()?;
            let mut back = vec![0f32; p.image()];
            p.scatter_add(&mut g.clone(), (p.plane(), 0), &mut back);
            let lhs: f32 = cols[..taps].iter().zip(&g).map(|(a, b)| a * b).sum();
            let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{lhs} {rhs}");
        }
        Ok(())
    }
}
