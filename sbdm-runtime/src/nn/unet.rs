//! A small DDPM-style U-Net for images.
//!
//! ```text
//! temb  = temb.1(SiLU(temb.0(TimeEmbedding(c))))   (+ label(y) when num_classes > 0)
//! h     = conv_in(x)                                channels → B; pushed to the skips
//! down.l: num_res_blocks ResBlocks (B·mult[l]), each output pushed;
//!         then, except at the last level, a stride-2 3×3 conv, output pushed
//! mid:  ResBlock, [self-attention], ResBlock
//! up.l (l reversed): num_res_blocks + 1 ResBlocks on concat(h, skip.pop());
//!         then, except at level 0, nearest ×2 upsampling and a 3×3 conv
//! out   = out.conv(SiLU(out.norm(h)))               zero-initialised, → channels
//! ```
//!
//! A ResBlock is `skip(x) + conv2(SiLU(norm2(conv1(SiLU(norm1(x))) + temb(SiLU(temb)))))`.
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::VarMap;
//! use sbdm_runtime::nn::{seeded_varbuilder, Network, UNet, UNetConfig};
//! # fn main() -> candle_core::Result<()> {
//! let varmap = VarMap::new();
//! let vb = seeded_varbuilder(&varmap, 0, DType::F32, &Device::Cpu);
//! let net = UNet::new(&UNetConfig::default(), vb)?;
//! let x = Tensor::zeros((2, 1, 16, 16), DType::F32, &Device::Cpu)?; // [N, C, H, W]
//! let c = Tensor::zeros(2, DType::F32, &Device::Cpu)?; // [N]
//! assert_eq!(net.forward(&x, &c, None)?.dims(), &[2, 1, 16, 16]);
//! # Ok(()) }
//! ```

use candle_core::{
    CpuStorage, CustomOp1, DType, Device, Layout, Result, Shape, Storage, Tensor, D,
};
use candle_nn::{Embedding, Init, Linear, Module, VarBuilder};
use serde::{Deserialize, Serialize};

use super::embed::{labels_or_null, EmbedConfig, TimeEmbedding};
use super::group_norm::FusedGroupNorm;
use super::Network;

/// The epsilon of every group normalisation.
const GN_EPS: f64 = 1e-5;

/// The configuration of a [`UNet`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UNetConfig {
    /// The image channels (input and output).
    pub channels: usize,
    /// The image side (square images); divisible by `2^(levels − 1)`.
    pub image_size: usize,
    /// The base channel count `B`; every `B·mult` is a multiple of `groups`.
    pub base_channels: usize,
    /// The channel multiplier of each resolution level.
    pub channel_mult: Vec<usize>,
    /// The ResBlocks per level on the way down (one more on the way up).
    pub num_res_blocks: usize,
    /// Self-attention in the middle block.
    pub attention: bool,
    /// The groups of every group normalisation.
    pub groups: usize,
    /// The embedding of the noise conditioning.
    pub embed: EmbedConfig,
    /// The number of classes (0: unconditional).
    pub num_classes: usize,
}

impl Default for UNetConfig {
    fn default() -> Self {
        UNetConfig {
            channels: 1,
            image_size: 16,
            base_channels: 32,
            channel_mult: vec![1, 2, 2],
            num_res_blocks: 1,
            attention: true,
            groups: 8,
            embed: EmbedConfig::Sinusoidal {
                dim: 32,
                max_period: 10000.0,
            },
            num_classes: 0,
        }
    }
}

impl UNetConfig {
    /// Checks the configuration; the error says what is wrong.
    pub fn validate(&self) -> Result<()> {
        let levels = self.channel_mult.len();
        if self.channels == 0 || self.base_channels == 0 || self.groups == 0 {
            candle_core::bail!("unet: channels, base_channels and groups must be positive");
        }
        if levels == 0 || self.channel_mult.contains(&0) {
            candle_core::bail!(
                "unet: channel_mult must be non-empty and positive, got {:?}",
                self.channel_mult
            );
        }
        if levels > 16 {
            candle_core::bail!("unet: at most 16 levels, got {levels}");
        }
        let factor = 1usize << (levels - 1);
        if self.image_size == 0 || self.image_size % factor != 0 {
            candle_core::bail!(
                "unet: image_size {} must be a positive multiple of 2^(levels − 1) = {factor}",
                self.image_size
            );
        }
        for &m in &self.channel_mult {
            let Some(ch) = self.base_channels.checked_mul(m) else {
                candle_core::bail!(
                    "unet: base_channels {} × mult {m} is too large",
                    self.base_channels
                );
            };
            if ch % self.groups != 0 {
                candle_core::bail!(
                    "unet: channel count {ch} (base_channels {} × mult {m}) is not a multiple of groups {}",
                    self.base_channels,
                    self.groups
                );
            }
        }
        Ok(())
    }

    /// The channel count after the encoder (the last level's).
    pub fn bottleneck_channels(&self) -> usize {
        self.base_channels
            .saturating_mul(self.channel_mult.last().copied().unwrap_or(1))
    }
}

/// A 2-D convolution (`weight [out, in, k, k]`, `bias [out]`, the variable names and
/// initialisation of `candle_nn::conv2d`) computed as im2col and one matmul.
///
/// On the CPU in f32 the patches of the whole batch form one matrix `[in·k² + 1,
/// N·Ho·Wo]` whose extra row of ones carries the bias, so the forward pass is one matmul
/// and the backward pass two matmuls and a col2im scatter: candle's own CPU convolution
/// backward (a direct transposed convolution) made a U-Net training step about twice as
/// slow, and a batched matmul against a broadcast weight pays a slow reduction over the
/// batch for the weight's gradient. Elsewhere candle's `conv2d`.
#[derive(Clone, Debug)]
struct Conv {
    weight: Tensor,
    bias: Tensor,
    stride: usize,
    padding: usize,
}

impl Conv {
    /// A `k×k` convolution with padding `k/2`, initialised like `candle_nn::conv2d`.
    fn new(cin: usize, cout: usize, k: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
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
            padding: k / 2,
        })
    }

    /// A `k×k` convolution with padding `k/2`, weights and bias zero.
    fn zeros(cin: usize, cout: usize, k: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Conv {
            weight: vb.get_with_hints((cout, cin, k, k), "weight", Init::Const(0.))?,
            bias: vb.get_with_hints(cout, "bias", Init::Const(0.))?,
            stride: 1,
            padding: k / 2,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (cout, _, k, _) = self.weight.dims4()?;
        if !(x.device().is_cpu() && x.dtype() == DType::F32) {
            let y = x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?;
            return y.broadcast_add(&self.bias.reshape((1, cout, 1, 1))?);
        }
        let im2col = Im2Col {
            k,
            stride: self.stride,
            padding: self.padding,
            extra_row: 1.0,
        };
        x.contiguous()?
            .apply_op3(&self.weight, &self.bias, ConvOp { im2col })
    }
}

/// The convolution as one node of the graph: `y = [W | b]·im2col(x)` forward, and its
/// three gradients by hand backward (`∂x = col2im(Wᵀ·g)`, `[∂W | ∂b] = Σ g·im2col(x)ᵀ`).
/// As separate ops (im2col, cat, matmul, reshape, transpose) each intermediate got a
/// gradient of its own, which candle's backward first allocates as zeros and then adds
/// to. Both passes go over the batch a few images at a time ([`CHUNK_BYTES`] of patches),
/// so the patches and their gradient stay in cache instead of being whole-batch buffers
/// (37 MB each for the widest layer, zero-filled by the allocation); the backward makes
/// a chunk's patches again rather than keeping them.
#[derive(Debug)]
struct ConvOp {
    im2col: Im2Col,
}

/// The most bytes of patches a chunk of images makes at once.
const CHUNK_BYTES: usize = 1 << 20;

impl ConvOp {
    /// `[W | b]`, `[out, in·k² + 1]`.
    fn weight_matrix(weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
        let (cout, cin, k, _) = weight.dims4()?;
        Tensor::cat(
            &[
                weight.reshape((cout, cin * k * k))?,
                bias.reshape((cout, 1))?,
            ],
            1,
        )
    }

    /// The image ranges `[b0, b1)` of the chunks of a batch of `n` images of `c`
    /// channels whose outputs have `plane` pixels.
    fn chunks(&self, n: usize, c: usize, plane: usize) -> Vec<(usize, usize)> {
        let rows = c * self.im2col.k * self.im2col.k + 1;
        let per = (CHUNK_BYTES / (rows * plane * 4).max(1)).max(1);
        (0..n)
            .step_by(per)
            .map(|b0| (b0, (b0 + per).min(n)))
            .collect()
    }
}

impl candle_core::CustomOp3 for ConvOp {
    fn name(&self) -> &'static str {
        "sbdm-conv"
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
        let (n, c, h, w) = xl.shape().dims4()?;
        let (cout, ..) = wl.shape().dims4()?;
        let (ho, wo) = self.im2col.out_size(h, w)?;
        let plane = ho * wo;
        let host = |s: &CpuStorage, l: &Layout| -> Result<Tensor> {
            let (Some((a, b)), CpuStorage::F32(v)) = (l.contiguous_offsets(), s) else {
                candle_core::bail!("sbdm conv: expected a contiguous f32 weight and bias");
            };
            Tensor::from_slice(&v[a..b], l.shape(), &Device::Cpu)
        };
        let wmat = Self::weight_matrix(&host(ws, wl)?, &host(bs, bl)?)?;
        let mut out = Vec::with_capacity(n * cout * plane);
        for (b0, b1) in self.chunks(n, c, plane) {
            // The chunk's patches (the storage moves into the tensor), then [out, nc·Ho·Wo],
            // written out image by image as [nc, out, Ho, Wo].
            let (CpuStorage::F32(cols), shape) =
                self.im2col.cpu_fwd(xs, &xl.narrow(0, b0, b1 - b0)?)?
            else {
                candle_core::bail!("sbdm conv: expected f32 patches");
            };
            let y = wmat.matmul(&Tensor::from_vec(cols, shape, &Device::Cpu)?)?;
            let (storage, layout) = y.storage_and_layout();
            let (Storage::Cpu(CpuStorage::F32(v)), Some((a, _))) =
                (&*storage, layout.contiguous_offsets())
            else {
                candle_core::bail!("sbdm conv: the product is not contiguous f32");
            };
            let (v, nc) = (&v[a..], b1 - b0);
            for bi in 0..nc {
                for o in 0..cout {
                    let at = (o * nc + bi) * plane;
                    out.extend_from_slice(&v[at..at + plane]);
                }
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((n, cout, ho, wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (n, c, h, w) = x.dims4()?;
        let (cout, cin, k, _) = weight.dims4()?;
        let (_, _, ho, wo) = grad.dims4()?;
        let x = x.detach().contiguous()?;
        let wmat_t = Self::weight_matrix(&weight.detach(), &bias.detach())?.t()?;
        let mut gw: Option<Tensor> = None;
        let mut gx = Vec::new();
        for (b0, b1) in self.chunks(n, c, ho * wo) {
            let nc = b1 - b0;
            let cols = x.narrow(0, b0, nc)?.apply_op1_no_bwd(&self.im2col)?;
            // The chunk's g as [out, nc·Ho·Wo], the product's layout.
            let g = grad
                .narrow(0, b0, nc)?
                .transpose(0, 1)?
                .contiguous()?
                .reshape((cout, nc * ho * wo))?;
            let part = g.matmul(&cols.t()?)?; // [out, in·k² + 1]
            gw = Some(match gw {
                Some(sum) => (sum + part)?,
                None => part,
            });
            gx.push(wmat_t.matmul(&g)?.apply_op1_no_bwd(&Col2Im {
                im2col: self.im2col,
                n: nc,
                c,
                h,
                w,
            })?);
        }
        let Some(gw) = gw else {
            candle_core::bail!("sbdm conv: an empty batch");
        };
        let gx = Tensor::cat(&gx, 0)?;
        let gweight = gw.narrow(1, 0, cin * k * k)?.reshape((cout, cin, k, k))?;
        let gbias = gw.narrow(1, cin * k * k, 1)?.reshape(cout)?;
        Ok((Some(gx), Some(gweight), Some(gbias)))
    }
}

/// `[N, C, H, W]` → the patches `[C·k·k + 1, N·Ho·Wo]`: row `(c·k + dy)·k + dx`,
/// column `(n·Ho + oy)·Wo + ox` holds `x[n, c, oy·s + dy − p, ox·s + dx − p]` (0 in the
/// padding); the last row is `extra_row` (1 for a bias; 0 in the adjoint of [`Col2Im`]).
#[derive(Clone, Copy, Debug)]
struct Im2Col {
    k: usize,
    stride: usize,
    padding: usize,
    extra_row: f32,
}

impl Im2Col {
    fn out_size(&self, h: usize, w: usize) -> Result<(usize, usize)> {
        let (k, s, p) = (self.k, self.stride, self.padding);
        if h + 2 * p < k || w + 2 * p < k || s == 0 {
            candle_core::bail!("conv: a {k}×{k} kernel does not fit a {h}×{w} input");
        }
        Ok(((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1))
    }

    /// Calls `f(input offset, patch offset)` for every in-bounds pair of one `[H, W]`
    /// plane and one patch row `(dy, dx)`, row by row.
    #[inline(always)]
    fn for_each_tap(
        &self,
        (h, w): (usize, usize),
        (ho, wo): (usize, usize),
        (dy, dx): (usize, usize),
        mut f: impl FnMut(usize, usize, usize),
    ) {
        let (s, p) = (self.stride, self.padding);
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
            let ix0 = ox0 * s + dx - p;
            f((iy - p) * w + ix0, oy * wo + ox0, ox1 - ox0);
        }
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (Some((a, b)), &[n, c, h, w]) = (l.contiguous_offsets(), l.dims()) else {
            candle_core::bail!(
                "im2col: expected a contiguous [N, C, H, W], got {:?}",
                l.dims()
            );
        };
        let x = &st.as_slice::<f32>()?[a..b];
        let (ho, wo) = self.out_size(h, w)?;
        let (k, s) = (self.k, self.stride);
        let rows = c * k * k + 1;
        let plane = ho * wo;
        // Zeros (the padding), then every in-bounds tap copied in. `ConvOp` calls this a
        // few images at a time, so the buffer is small enough to stay in cache.
        let mut out = vec![0f32; rows * n * plane];
        for (b, img) in x.chunks_exact(c * h * w).enumerate() {
            for (ci, src) in img.chunks_exact(h * w).enumerate() {
                for dy in 0..k {
                    for dx in 0..k {
                        let at = (((ci * k + dy) * k + dx) * n + b) * plane;
                        let d = &mut out[at..at + plane];
                        self.for_each_tap((h, w), (ho, wo), (dy, dx), |i, o, len| {
                            if s == 1 {
                                d[o..o + len].copy_from_slice(&src[i..i + len]);
                            } else {
                                for (j, v) in d[o..o + len].iter_mut().enumerate() {
                                    *v = src[i + j * s];
                                }
                            }
                        });
                    }
                }
            }
        }
        out[(rows - 1) * n * plane..].fill(self.extra_row);
        Ok((CpuStorage::F32(out), Shape::from((rows, n * plane))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (n, c, h, w) = arg.dims4()?;
        let col2im = Col2Im {
            im2col: *self,
            n,
            c,
            h,
            w,
        };
        Ok(Some(grad.contiguous()?.apply_op1(col2im)?))
    }
}

/// The adjoint of [`Im2Col`]: scatters the gradient of the patches `[C·k·k + 1,
/// N·Ho·Wo]` back onto the image `[N, C, H, W]` (the extra row is dropped).
#[derive(Clone, Copy, Debug)]
struct Col2Im {
    im2col: Im2Col,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, st: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = (self.n, self.c, self.h, self.w);
        let Im2Col { k, stride: s, .. } = self.im2col;
        let (ho, wo) = self.im2col.out_size(h, w)?;
        let (rows, plane) = (c * k * k + 1, ho * wo);
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("col2im: the patches must be contiguous");
        };
        if l.dims() != [rows, n * plane] {
            candle_core::bail!(
                "col2im: expected [{rows}, {}], got {:?}",
                n * plane,
                l.dims()
            );
        }
        let g = &st.as_slice::<f32>()?[a..b];
        let mut out = vec![0f32; n * c * h * w];
        // The row sums compiled for AVX2 where the CPU has it (the same results).
        crate::simd::vectorised(
            #[inline(always)]
            || {
                for (bi, img) in out.chunks_exact_mut(c * h * w).enumerate() {
                    for (ci, dst) in img.chunks_exact_mut(h * w).enumerate() {
                        for dy in 0..k {
                            for dx in 0..k {
                                let at = (((ci * k + dy) * k + dx) * n + bi) * plane;
                                let gs = &g[at..at + plane];
                                self.im2col.for_each_tap(
                                    (h, w),
                                    (ho, wo),
                                    (dy, dx),
                                    #[inline(always)]
                                    |i, o, len| {
                                        let gs = &gs[o..o + len];
                                        if s == 1 {
                                            for (d, &g) in dst[i..i + len].iter_mut().zip(gs) {
                                                *d += g;
                                            }
                                        } else {
                                            for (j, &g) in gs.iter().enumerate() {
                                                dst[i + j * s] += g;
                                            }
                                        }
                                    },
                                );
                            }
                        }
                    }
                }
            },
        );
        Ok((CpuStorage::F32(out), Shape::from((n, c, h, w))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let adjoint = Im2Col {
            extra_row: 0.0,
            ..self.im2col
        };
        Ok(Some(grad.contiguous()?.apply_op1(adjoint)?))
    }
}

/// A residual block conditioned on the time embedding.
#[derive(Clone, Debug)]
struct ResBlock {
    /// `SiLU(norm1(x))`.
    norm1: FusedGroupNorm,
    conv1: Conv,
    temb: Linear,
    /// `SiLU(norm2(h))`.
    norm2: FusedGroupNorm,
    conv2: Conv,
    skip: Option<Conv>,
}

impl ResBlock {
    fn new(
        cin: usize,
        cout: usize,
        temb_dim: usize,
        groups: usize,
        vb: VarBuilder,
    ) -> Result<Self> {
        let skip = if cin != cout {
            Some(Conv::new(cin, cout, 1, 1, vb.pp("skip"))?)
        } else {
            None
        };
        Ok(ResBlock {
            norm1: FusedGroupNorm::new(groups, cin, GN_EPS, true, vb.pp("norm1"))?,
            conv1: Conv::new(cin, cout, 3, 1, vb.pp("conv1"))?,
            temb: candle_nn::linear(temb_dim, cout, vb.pp("temb"))?,
            norm2: FusedGroupNorm::new(groups, cout, GN_EPS, true, vb.pp("norm2"))?,
            conv2: Conv::new(cout, cout, 3, 1, vb.pp("conv2"))?,
            skip,
        })
    }

    /// `x [N, cin, H, W]`, `temb_act = SiLU(temb)` `[N, 4B]` → `[N, cout, H, W]`.
    fn forward(&self, x: &Tensor, temb_act: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(&self.norm1.forward(x)?)?;
        let t = self.temb.forward(temb_act)?.unsqueeze(2)?.unsqueeze(3)?;
        let h = h.broadcast_add(&t)?;
        let h = self.conv2.forward(&self.norm2.forward(&h)?)?;
        match &self.skip {
            Some(skip) => skip.forward(x)? + h,
            None => x + h,
        }
    }
}

/// Single-head self-attention over the pixels, with a residual connection.
#[derive(Clone, Debug)]
struct Attention {
    norm: FusedGroupNorm,
    qkv: Linear,
    proj: Linear,
    channels: usize,
}

impl Attention {
    fn new(ch: usize, groups: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Attention {
            norm: FusedGroupNorm::new(groups, ch, GN_EPS, false, vb.pp("norm"))?,
            qkv: candle_nn::linear(ch, 3 * ch, vb.pp("qkv"))?,
            proj: candle_nn::linear(ch, ch, vb.pp("proj"))?,
            channels: ch,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, hh, ww) = x.dims4()?;
        let ch = self.channels;
        // [N, C, H, W] → [N, HW, C]
        let h = self
            .norm
            .forward(x)?
            .reshape((n, c, hh * ww))?
            .transpose(1, 2)?
            .contiguous()?;
        let qkv = self.qkv.forward(&h)?;
        let q = qkv.narrow(2, 0, ch)?;
        let k = qkv.narrow(2, ch, ch)?;
        let v = qkv.narrow(2, 2 * ch, ch)?.contiguous()?;
        let scores = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? / (ch as f64).sqrt())?;
        let attn = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let out = self.proj.forward(&attn.matmul(&v)?)?;
        let out = out.transpose(1, 2)?.reshape((n, c, hh, ww))?;
        x + out
    }
}

/// The encoder half of the U-Net: time (and label) embedding, `conv_in`, the down path
/// and the middle block. Shared by [`UNet`] and the U-Net classifier, under the same
/// variable names.
#[derive(Clone, Debug)]
pub(crate) struct Encoder {
    channels: usize,
    levels: usize,
    embed: TimeEmbedding,
    temb0: Linear,
    temb1: Linear,
    label: Option<Embedding>,
    num_classes: usize,
    conv_in: Conv,
    /// Per level: its ResBlocks and its downsampling conv (all but the last level).
    down: Vec<(Vec<ResBlock>, Option<Conv>)>,
    mid1: ResBlock,
    attn: Option<Attention>,
    mid2: ResBlock,
    /// The channel count of every skip, in push order.
    skip_channels: Vec<usize>,
}

/// The encoder's output: the bottleneck features, the skips and `SiLU(temb)`.
pub(crate) struct Encoded {
    pub(crate) h: Tensor,
    pub(crate) skips: Vec<Tensor>,
    pub(crate) temb_act: Tensor,
}

impl Encoder {
    pub(crate) fn new(cfg: &UNetConfig, vb: VarBuilder) -> Result<Self> {
        cfg.validate()?;
        let b = cfg.base_channels;
        let tdim = 4 * b;
        let embed = TimeEmbedding::new(&cfg.embed, vb.device())?;
        let temb0 = candle_nn::linear(embed.dim(), tdim, vb.pp("temb.0"))?;
        let temb1 = candle_nn::linear(tdim, tdim, vb.pp("temb.1"))?;
        let label = if cfg.num_classes > 0 {
            Some(candle_nn::embedding(
                cfg.num_classes + 1,
                tdim,
                vb.pp("label"),
            )?)
        } else {
            None
        };
        let conv_in = Conv::new(cfg.channels, b, 3, 1, vb.pp("conv_in"))?;
        let mut skip_channels = vec![b];
        let mut ch = b;
        let levels = cfg.channel_mult.len();
        let mut down = Vec::with_capacity(levels);
        for (l, &m) in cfg.channel_mult.iter().enumerate() {
            let vl = vb.pp(format!("down.{l}"));
            let cout = b * m;
            let mut blocks = Vec::with_capacity(cfg.num_res_blocks);
            for j in 0..cfg.num_res_blocks {
                blocks.push(ResBlock::new(
                    ch,
                    cout,
                    tdim,
                    cfg.groups,
                    vl.pp(format!("res.{j}")),
                )?);
                ch = cout;
                skip_channels.push(ch);
            }
            let downsample = if l + 1 < levels {
                skip_channels.push(ch);
                Some(Conv::new(ch, ch, 3, 2, vl.pp("downsample"))?)
            } else {
                None
            };
            down.push((blocks, downsample));
        }
        let mid1 = ResBlock::new(ch, ch, tdim, cfg.groups, vb.pp("mid.res.0"))?;
        let attn = if cfg.attention {
            Some(Attention::new(ch, cfg.groups, vb.pp("mid.attn"))?)
        } else {
            None
        };
        let mid2 = ResBlock::new(ch, ch, tdim, cfg.groups, vb.pp("mid.res.1"))?;
        Ok(Encoder {
            channels: cfg.channels,
            levels,
            embed,
            temb0,
            temb1,
            label,
            num_classes: cfg.num_classes,
            conv_in,
            down,
            mid1,
            attn,
            mid2,
            skip_channels,
        })
    }

    pub(crate) fn skip_channels(&self) -> &[usize] {
        &self.skip_channels
    }

    pub(crate) fn forward(&self, x: &Tensor, c: &Tensor, y: Option<&Tensor>) -> Result<Encoded> {
        let (n, ch, hh, ww) = x.dims4()?;
        let factor = 1usize << (self.levels - 1);
        if ch != self.channels || hh % factor != 0 || ww % factor != 0 || hh == 0 || ww == 0 {
            candle_core::bail!(
                "unet: expected x of shape [N, {}, H, W] with H and W multiples of {factor}, got {:?}",
                self.channels,
                x.dims()
            );
        }
        if c.dims() != [n] {
            candle_core::bail!("unet: expected c of shape [{n}], got {:?}", c.dims());
        }
        let mut temb = self
            .temb1
            .forward(&self.temb0.forward(&self.embed.forward(c)?)?.silu()?)?;
        match &self.label {
            Some(label) => {
                let y = labels_or_null(y, n, self.num_classes, x.device())?;
                temb = (temb + label.forward(&y)?)?;
            }
            None if y.is_some() => {
                candle_core::bail!("unet: labels given to an unconditional network")
            }
            None => {}
        }
        let temb_act = temb.silu()?;
        let mut h = self.conv_in.forward(x)?;
        let mut skips = vec![h.clone()];
        for (blocks, downsample) in &self.down {
            for block in blocks {
                h = block.forward(&h, &temb_act)?;
                skips.push(h.clone());
            }
            if let Some(conv) = downsample {
                h = conv.forward(&h)?;
                skips.push(h.clone());
            }
        }
        h = self.mid1.forward(&h, &temb_act)?;
        if let Some(attn) = &self.attn {
            h = attn.forward(&h)?;
        }
        h = self.mid2.forward(&h, &temb_act)?;
        Ok(Encoded { h, skips, temb_act })
    }
}

/// A small DDPM-style U-Net: `(x [N, C, H, W], c [N], y) → [N, C, H, W]`.
#[derive(Clone, Debug)]
pub struct UNet {
    encoder: Encoder,
    /// Per level, from the lowest resolution up: its ResBlocks and its upsampling conv
    /// (all but level 0).
    up: Vec<(Vec<ResBlock>, Option<Conv>)>,
    /// `SiLU(out.norm(h))`.
    out_norm: FusedGroupNorm,
    out_conv: Conv,
}

impl UNet {
    /// Builds the U-Net; fails with a message if `cfg` is invalid (see
    /// [`UNetConfig::validate`]).
    pub fn new(cfg: &UNetConfig, vb: VarBuilder) -> Result<Self> {
        let encoder = Encoder::new(cfg, vb.clone())?;
        let b = cfg.base_channels;
        let tdim = 4 * b;
        let mut skip_channels = encoder.skip_channels().to_vec();
        let mut ch = cfg.bottleneck_channels();
        let mut up = Vec::with_capacity(cfg.channel_mult.len());
        for (l, &m) in cfg.channel_mult.iter().enumerate().rev() {
            let vl = vb.pp(format!("up.{l}"));
            let cout = b * m;
            let mut blocks = Vec::with_capacity(cfg.num_res_blocks + 1);
            for j in 0..=cfg.num_res_blocks {
                let skip = skip_channels.pop().expect("one skip per up block");
                blocks.push(ResBlock::new(
                    ch + skip,
                    cout,
                    tdim,
                    cfg.groups,
                    vl.pp(format!("res.{j}")),
                )?);
                ch = cout;
            }
            let upsample = if l > 0 {
                Some(Conv::new(ch, ch, 3, 1, vl.pp("upsample"))?)
            } else {
                None
            };
            up.push((blocks, upsample));
        }
        debug_assert!(skip_channels.is_empty());
        let out_norm = FusedGroupNorm::new(cfg.groups, ch, GN_EPS, true, vb.pp("out.norm"))?;
        // Zero-initialised: the untrained network outputs exactly 0.
        let out_conv = Conv::zeros(ch, cfg.channels, 3, vb.pp("out.conv"))?;
        Ok(UNet {
            encoder,
            up,
            out_norm,
            out_conv,
        })
    }

    /// The encoder's features after the middle block, `[N, B·mult[last], H/2^(L−1),
    /// W/2^(L−1)]`.
    pub fn encode(&self, x: &Tensor, c: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
        Ok(self.encoder.forward(x, c, y)?.h)
    }
}

impl Network for UNet {
    /// `x [N, C, H, W]`, `c [N]`, `y [N]` u32 or `None` → `[N, C, H, W]`. Labels given to
    /// an unconditional network are an error.
    fn forward(&self, x: &Tensor, c: &Tensor, y: Option<&Tensor>) -> Result<Tensor> {
        let Encoded {
            mut h,
            mut skips,
            temb_act,
        } = self.encoder.forward(x, c, y)?;
        for (blocks, upsample) in &self.up {
            for block in blocks {
                let skip = skips.pop().expect("one skip per up block");
                h = block.forward(&Tensor::cat(&[&h, &skip], 1)?, &temb_act)?;
            }
            if let Some(conv) = upsample {
                let (_, _, hh, ww) = h.dims4()?;
                h = conv.forward(&h.upsample_nearest2d(2 * hh, 2 * ww)?)?;
            }
        }
        // Contiguous for the callers' fused in-place updates.
        self.out_conv
            .forward(&self.out_norm.forward(&h)?)?
            .contiguous()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::seeded_varbuilder;
    use candle_core::{Device, Var};
    use candle_nn::VarMap;

    use crate::nn::seeded_randn as randn;

    fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
        (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
    }

    /// The im2col convolution against candle's `conv2d`: values and the gradients of
    /// `x`, the weight and the bias.
    #[test]
    fn conv_matches_candle() -> Result<()> {
        let dev = Device::Cpu;
        // The last two cases split the batch into several chunks of images (40 and 9
        // images of 148 KB of patches each, CHUNK_BYTES a chunk).
        for (k, stride, h, w, n, cin) in [
            (3, 1, 8, 8, 2, 3),
            (3, 2, 8, 8, 2, 3),
            (3, 2, 7, 5, 2, 3),
            (1, 1, 6, 3, 2, 3),
            (3, 1, 1, 2, 2, 3),
            (3, 1, 16, 16, 40, 16),
            (3, 1, 16, 16, 9, 16),
        ] {
            let vm = VarMap::new();
            let vb = seeded_varbuilder(&vm, 3, DType::F32, &dev);
            let conv = Conv::new(cin, 4, k, stride, vb.pp("c"))?;
            let rows = cin * k * k + 1;
            let chunks = (ConvOp {
                im2col: Im2Col {
                    k,
                    stride,
                    padding: k / 2,
                    extra_row: 1.0,
                },
            })
            .chunks(n, cin, h * w / (stride * stride))
            .len();
            assert!(n < 40 || chunks > 1, "{chunks} chunks of rows {rows}");
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
                // The chunked cases sum up to n·Ho·Wo = 10 240 f32 terms in another order
                // than candle: relative to the gradient's size, √terms·ε ≈ 6e-6 (7.7e-7
                // measured); the small ones within 1e-4 as they always were.
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

    /// `⟨im2col(x), g⟩ = ⟨x, col2im(g)⟩`: col2im is the adjoint (the backward pass).
    #[test]
    fn col2im_is_the_adjoint() -> Result<()> {
        let op = Im2Col {
            k: 3,
            stride: 2,
            padding: 1,
            extra_row: 0.0,
        };
        let x = randn(1, &[2, 3, 7, 6])?;
        let cols = x.apply_op1_no_bwd(&op)?;
        let g = randn(2, cols.dims())?;
        let back = g.apply_op1_no_bwd(&Col2Im {
            im2col: op,
            n: 2,
            c: 3,
            h: 7,
            w: 6,
        })?;
        let lhs = (cols * &g)?.sum_all()?.to_scalar::<f32>()?;
        let rhs = (x * back)?.sum_all()?.to_scalar::<f32>()?;
        assert!((lhs - rhs).abs() < 1e-4 * lhs.abs().max(1.0), "{lhs} {rhs}");
        Ok(())
    }
}
