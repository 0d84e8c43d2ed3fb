//! A network's size from its configuration alone, before anything is built: the exact
//! number of parameters, and an estimate of the floats one sample's forward pass holds.
//!
//! Both are computed in saturating `u128` arithmetic in a time independent of the sizes
//! (U-Net skip connections are counted as runs of equal channel counts), so that a
//! configuration read from input (a checkpoint's metadata, training flags) can be
//! measured and refused before a single weight is allocated. The counts are checked
//! against the built networks in this module's tests.

use super::classifier::ClassifierConfig;
use super::mlp::MlpConfig;
use super::unet::UNetConfig;
use super::NetConfig;

type N = u128;

fn n(v: usize) -> N {
    v as N
}

/// `weight [o, i]` and `bias [o]`.
fn linear(i: N, o: N) -> N {
    i.saturating_mul(o).saturating_add(o)
}

/// `weight [o, i, k, k]` and `bias [o]`.
fn conv(i: N, o: N, k: N) -> N {
    o.saturating_mul(i)
        .saturating_mul(k.saturating_mul(k))
        .saturating_add(o)
}

/// A U-Net ResBlock `cin → cout` with a time embedding of `tdim`.
fn res_block(cin: N, cout: N, tdim: N) -> N {
    let skip = if cin != cout { conv(cin, cout, 1) } else { 0 };
    [
        cin.saturating_mul(2),
        conv(cin, cout, 3),
        linear(tdim, cout),
        cout.saturating_mul(2),
        conv(cout, cout, 3),
        skip,
    ]
    .iter()
    .fold(0, |a: N, b| a.saturating_add(*b))
}

impl MlpConfig {
    /// The parameters of the MLP with `out` outputs ([`Mlp::new_with_out`](super::Mlp::new_with_out)).
    pub fn parameter_count_with_out(&self, out: usize) -> u128 {
        let e = n(self.embed.dim());
        let label = if self.num_classes > 0 {
            n(self.num_classes).saturating_add(1).saturating_mul(e)
        } else {
            0
        };
        let w = n(self.width);
        let hidden = n(self.depth).saturating_sub(1).saturating_mul(linear(w, w));
        [
            linear(e, e),
            label,
            linear(n(self.dim).saturating_add(e), w),
            hidden,
            linear(w, n(out)),
        ]
        .iter()
        .fold(0, |a: N, b| a.saturating_add(*b))
    }

    /// Floats one sample's forward pass holds (an estimate).
    fn activations(&self, out: usize) -> u128 {
        let e = n(self.embed.dim());
        n(self.width)
            .saturating_mul(n(self.depth))
            .saturating_mul(3)
            .saturating_add(n(self.dim).saturating_add(e.saturating_mul(2)))
            .saturating_add(n(out))
    }
}

/// The U-Net encoder's parameters, its final channel count and the channel counts of
/// its skips as `(channels, count)` runs in push order.
fn encoder(cfg: &UNetConfig) -> (N, N, Vec<(N, N)>) {
    let b = n(cfg.base_channels);
    let tdim = b.saturating_mul(4);
    let e = n(cfg.embed.dim());
    let label = if cfg.num_classes > 0 {
        n(cfg.num_classes).saturating_add(1).saturating_mul(tdim)
    } else {
        0
    };
    let mut count = [
        linear(e, tdim),
        linear(tdim, tdim),
        label,
        conv(n(cfg.channels), b, 3),
    ]
    .iter()
    .fold(0, |a: N, x| a.saturating_add(*x));
    let r = n(cfg.num_res_blocks);
    let levels = cfg.channel_mult.len();
    let mut runs = vec![(b, 1)];
    let mut ch = b;
    for (l, &m) in cfg.channel_mult.iter().enumerate() {
        let cout = b.saturating_mul(n(m));
        if r > 0 {
            count = count
                .saturating_add(res_block(ch, cout, tdim))
                .saturating_add((r - 1).saturating_mul(res_block(cout, cout, tdim)));
            ch = cout;
            runs.push((ch, r));
        }
        if l + 1 < levels {
            runs.push((ch, 1));
            count = count.saturating_add(conv(ch, ch, 3));
        }
    }
    count = count.saturating_add(res_block(ch, ch, tdim).saturating_mul(2));
    if cfg.attention {
        count = count
            .saturating_add(ch.saturating_mul(2))
            .saturating_add(linear(ch, ch.saturating_mul(3)))
            .saturating_add(linear(ch, ch));
    }
    (count, ch, runs)
}

/// Takes up to `max` skips from the top of `runs`: their channel count and how many.
fn pop(runs: &mut Vec<(N, N)>, max: N) -> (N, N) {
    match runs.last_mut() {
        Some((ch, k)) => {
            let (ch, take) = (*ch, (*k).min(max));
            *k -= take;
            if *k == 0 {
                runs.pop();
            }
            (ch, take)
        }
        None => (0, max),
    }
}

impl UNetConfig {
    /// The U-Net's parameters ([`UNet::new`](super::UNet::new)).
    pub fn parameter_count(&self) -> u128 {
        let (mut count, _, mut runs) = encoder(self);
        let b = n(self.base_channels);
        let tdim = b.saturating_mul(4);
        let r = n(self.num_res_blocks);
        let mut ch = n(self.bottleneck_channels());
        for (l, &m) in self.channel_mult.iter().enumerate().rev() {
            let cout = b.saturating_mul(n(m));
            let (skip, _) = pop(&mut runs, 1);
            count = count.saturating_add(res_block(ch.saturating_add(skip), cout, tdim));
            ch = cout;
            let mut left = r;
            while left > 0 {
                let (skip, k) = pop(&mut runs, left);
                let block = res_block(cout.saturating_add(skip), cout, tdim);
                count = count.saturating_add(k.saturating_mul(block));
                left -= k;
            }
            if l > 0 {
                count = count.saturating_add(conv(ch, ch, 3));
            }
        }
        count
            .saturating_add(ch.saturating_mul(2))
            .saturating_add(conv(ch, n(self.channels), 3))
    }

    /// Floats one sample's forward pass holds (an estimate): per level, every conv's
    /// patches (9 per input channel) and a few feature maps per block; the middle
    /// attention's `HW × HW` scores.
    fn activations(&self) -> u128 {
        let b = n(self.base_channels);
        let s = n(self.image_size);
        let blocks = n(self.num_res_blocks).saturating_mul(2).saturating_add(3);
        let mut total = n(self.channels)
            .saturating_mul(s)
            .saturating_mul(s)
            .saturating_mul(4);
        let mut area = s.saturating_mul(s);
        for &m in &self.channel_mult {
            let c = b.saturating_mul(n(m));
            total = total.saturating_add(
                blocks
                    .saturating_mul(c)
                    .saturating_mul(area)
                    .saturating_mul(16),
            );
            area /= 4;
        }
        if self.attention {
            let hw = area.saturating_mul(4); // the bottleneck's area
            let c = n(self.bottleneck_channels());
            total = total
                .saturating_add(hw.saturating_mul(hw).saturating_mul(2))
                .saturating_add(c.saturating_mul(hw).saturating_mul(6));
        }
        total
    }
}

impl NetConfig {
    /// The number of parameters the network has, exactly, without building it
    /// (saturating at `u128::MAX`).
    pub fn parameter_count(&self) -> u128 {
        match self {
            NetConfig::Mlp(c) => c.parameter_count_with_out(c.dim),
            NetConfig::Unet(c) => c.parameter_count(),
        }
    }

    /// An estimate of the floats one sample's forward pass holds (activations, a
    /// U-Net's convolution patches and attention scores); a backward pass holds about
    /// as much again.
    pub fn activations_per_sample(&self) -> u128 {
        match self {
            NetConfig::Mlp(c) => c.activations(c.dim),
            NetConfig::Unet(c) => c.activations(),
        }
    }
}

impl ClassifierConfig {
    /// The number of parameters the classifier has, exactly, without building it.
    pub fn parameter_count(&self) -> u128 {
        match &self.net {
            NetConfig::Mlp(m) => MlpConfig {
                num_classes: 0,
                ..m.clone()
            }
            .parameter_count_with_out(self.num_classes),
            NetConfig::Unet(u) => {
                let u = UNetConfig {
                    num_classes: 0,
                    ..u.clone()
                };
                let (count, _, _) = encoder(&u);
                let ch = n(u.bottleneck_channels());
                count
                    .saturating_add(ch.saturating_mul(2))
                    .saturating_add(linear(ch, n(self.num_classes)))
            }
        }
    }

    /// An estimate of the floats one sample's forward pass holds.
    pub fn activations_per_sample(&self) -> u128 {
        match &self.net {
            NetConfig::Mlp(m) => m.activations(self.num_classes),
            NetConfig::Unet(u) => u.activations(),
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::*;
    use crate::nn::{seeded_varbuilder, Classifier, EmbedConfig};

    fn built(build: impl FnOnce(candle_nn::VarBuilder) -> candle_core::Result<()>) -> u128 {
        let varmap = VarMap::new();
        build(seeded_varbuilder(&varmap, 0, DType::F32, &Device::Cpu)).unwrap();
        varmap
            .all_vars()
            .iter()
            .map(|v| v.as_tensor().elem_count() as u128)
            .sum()
    }

    fn mlps() -> Vec<MlpConfig> {
        let mut v = Vec::new();
        for (depth, classes, embed) in [
            (1, 0, EmbedConfig::default()),
            (3, 0, EmbedConfig::default()),
            (
                2,
                5,
                EmbedConfig::Sinusoidal {
                    dim: 6,
                    max_period: 100.0,
                },
            ),
        ] {
            v.push(MlpConfig {
                dim: 3,
                width: 7,
                depth,
                embed,
                num_classes: classes,
            });
        }
        v
    }

    fn unets() -> Vec<UNetConfig> {
        let mut v = Vec::new();
        for (mult, blocks, attention, classes) in [
            (vec![1], 1, false, 0),
            (vec![1, 2], 1, true, 0),
            (vec![1, 2, 2], 2, true, 3),
            (vec![2, 1, 3], 0, false, 0),
            (vec![1, 1], 3, false, 2),
        ] {
            v.push(UNetConfig {
                channels: 2,
                image_size: 8,
                base_channels: 4,
                channel_mult: mult,
                num_res_blocks: blocks,
                attention,
                groups: 2,
                embed: EmbedConfig::Sinusoidal {
                    dim: 6,
                    max_period: 10.0,
                },
                num_classes: classes,
            });
        }
        v
    }

    #[test]
    fn counts_match_the_built_networks() {
        let nets = mlps()
            .into_iter()
            .map(NetConfig::Mlp)
            .chain(unets().into_iter().map(NetConfig::Unet));
        for cfg in nets {
            let have = built(|vb| cfg.build(vb).map(drop));
            assert_eq!(cfg.parameter_count(), have, "{cfg:?}");
            let clf = ClassifierConfig {
                net: cfg.clone(),
                num_classes: 4,
            };
            let have = built(|vb| Classifier::new(&clf, vb).map(drop));
            assert_eq!(clf.parameter_count(), have, "{clf:?}");
            assert!(cfg.activations_per_sample() > 0);
        }
    }

    #[test]
    fn absurd_sizes_saturate_at_once() {
        let huge = UNetConfig {
            base_channels: usize::MAX,
            num_res_blocks: usize::MAX,
            image_size: usize::MAX,
            channel_mult: vec![usize::MAX; 16],
            ..Default::default()
        };
        assert_eq!(huge.parameter_count(), u128::MAX);
        assert_eq!(NetConfig::Unet(huge).activations_per_sample(), u128::MAX);
        let mlp = MlpConfig {
            width: 1_000_000_000,
            depth: 1_000_000_000,
            ..Default::default()
        };
        assert!(NetConfig::Mlp(mlp).parameter_count() > 1e26 as u128);
    }
}
