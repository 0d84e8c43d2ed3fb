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

use candle_core::{Result, Tensor, D};
use candle_nn::{Embedding, Linear, Module, VarBuilder};
use serde::{Deserialize, Serialize};

use super::conv::Conv;
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
