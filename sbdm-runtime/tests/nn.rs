//! The score networks and classifiers of `sbdm_runtime::nn`: shapes, seeding, gradients,
//! a tiny overfit, and (ignored) a timing of the MLP training step.

use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_nn::{Optimizer, VarMap};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use sbdm_runtime::nn::{
    seeded_varbuilder, Classifier, ClassifierConfig, EmbedConfig, Mlp, MlpConfig, NetConfig,
    Network, TimeEmbedding, UNet, UNetConfig,
};

const CPU: Device = Device::Cpu;

/// Standard normal data of `shape` from a ChaCha8 stream.
fn randn(seed: u64, shape: &[usize]) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut rng);
            z as f32
        })
        .collect();
    Tensor::from_vec(v, shape, &CPU)
}

/// Conditionings spread over `[−2, 2]`.
fn conds(n: usize) -> Result<Tensor> {
    let v: Vec<f32> = (0..n)
        .map(|i| -2.0 + 4.0 * i as f32 / (n.max(2) - 1) as f32)
        .collect();
    Tensor::from_vec(v, n, &CPU)
}

fn small_unet(channels: usize, image_size: usize, attention: bool) -> UNetConfig {
    UNetConfig {
        channels,
        image_size,
        base_channels: 16,
        attention,
        ..UNetConfig::default()
    }
}

fn max_abs(t: &Tensor) -> Result<f32> {
    t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
}

/// Named flat weights, sorted by name.
type Snapshot = Vec<(String, Vec<f32>)>;

/// Every var of `vm`, sorted by name, as flat f32 vectors.
fn snapshot(vm: &VarMap) -> Snapshot {
    let mut v: Vec<_> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, var)| {
            let data = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            (k.clone(), data)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn var(vm: &VarMap, name: &str) -> Var {
    vm.data().lock().unwrap()[name].clone()
}

#[test]
fn time_embedding_values() -> Result<()> {
    let cfg = EmbedConfig::Sinusoidal {
        dim: 8,
        max_period: 10000.0,
    };
    let e = TimeEmbedding::new(&cfg, &CPU)?;
    let out = e.forward(&Tensor::zeros(3, DType::F32, &CPU)?)?;
    assert_eq!(out.dims(), &[3, 8]);
    for row in out.to_vec2::<f32>()? {
        assert_eq!(row, [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]);
    }
    // At c = 0.001 the first frequency (1000) gives sin(1) and cos(1).
    let row = e
        .forward(&Tensor::new(&[0.001f32], &CPU)?)?
        .to_vec2::<f32>()?;
    assert!((row[0][0] - 1f32.sin()).abs() < 1e-4 && (row[0][4] - 1f32.cos()).abs() < 1e-4);

    let f = EmbedConfig::default();
    let c = conds(16)?;
    let a = TimeEmbedding::new(&f, &CPU)?.forward(&c)?;
    let b = TimeEmbedding::new(&f, &CPU)?.forward(&c)?;
    assert_eq!(a.dims(), &[16, 64]);
    assert_eq!(a.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
    // sin² + cos² = 1 per frequency.
    let s = a.narrow(1, 0, 32)?.sqr()? + a.narrow(1, 32, 32)?.sqr()?;
    assert!(max_abs(&(s? - 1.0)?)? < 1e-5);
    Ok(())
}

#[test]
fn mlp_shapes_and_labels() -> Result<()> {
    let vm = VarMap::new();
    let net = Mlp::new(
        &MlpConfig::default(),
        seeded_varbuilder(&vm, 0, DType::F32, &CPU),
    )?;
    let x = randn(1, &[7, 2])?;
    let out = net.forward(&x, &conds(7)?, None)?;
    assert_eq!(out.dims(), &[7, 2]);
    // 2→256→256→256→2 plus the 64→64 embedding projection.
    let n: usize = vm.all_vars().iter().map(|v| v.elem_count()).sum();
    assert_eq!(
        n,
        (66 * 256 + 256) + 2 * (256 * 256 + 256) + (256 * 2 + 2) + (64 * 64 + 64)
    );
    let y = Tensor::new(&[0u32; 7], &CPU)?;
    assert!(net.forward(&x, &conds(7)?, Some(&y)).is_err());
    assert!(net.forward(&x, &conds(6)?, None).is_err());

    let vm = VarMap::new();
    let cfg = MlpConfig {
        num_classes: 3,
        ..MlpConfig::default()
    };
    let net = Mlp::new(&cfg, seeded_varbuilder(&vm, 0, DType::F32, &CPU))?;
    assert_eq!(var(&vm, "label.weight").dims(), &[4, 64]);
    let c = conds(7)?;
    let y = Tensor::new(&[0u32, 1, 2, 3, 0, 1, 2], &CPU)?;
    let labelled = net.forward(&x, &c, Some(&y))?;
    assert_eq!(labelled.dims(), &[7, 2]);
    // `None` is the null class 3 for every row.
    let null = net.forward(&x, &c, None)?.to_vec2::<f32>()?;
    let all3 = net.forward(&x, &c, Some(&Tensor::new(&[3u32; 7], &CPU)?))?;
    assert_eq!(null, all3.to_vec2::<f32>()?);
    assert_ne!(null, labelled.to_vec2::<f32>()?);
    Ok(())
}

#[test]
fn unet_shapes() -> Result<()> {
    for (channels, size, attention) in
        [(1, 16, true), (1, 16, false), (3, 32, true), (3, 32, false)]
    {
        let vm = VarMap::new();
        let cfg = small_unet(channels, size, attention);
        let net = UNet::new(&cfg, seeded_varbuilder(&vm, 0, DType::F32, &CPU))?;
        let x = randn(2, &[2, channels, size, size])?;
        let out = net.forward(&x, &conds(2)?, None)?;
        assert_eq!(out.dims(), x.dims(), "{cfg:?}");
        assert!(out.is_contiguous());
        let h = net.encode(&x, &conds(2)?, None)?;
        assert_eq!(h.dims(), &[2, 32, size / 4, size / 4]);
        assert_eq!(
            vm.data()
                .lock()
                .unwrap()
                .contains_key("mid.attn.qkv.weight"),
            attention
        );
    }
    // Class-conditional, with labels.
    let vm = VarMap::new();
    let cfg = UNetConfig {
        num_classes: 10,
        ..small_unet(1, 16, true)
    };
    let net = UNet::new(&cfg, seeded_varbuilder(&vm, 0, DType::F32, &CPU))?;
    let y = Tensor::new(&[3u32, 10], &CPU)?;
    let out = net.forward(&randn(2, &[2, 1, 16, 16])?, &conds(2)?, Some(&y))?;
    assert_eq!(out.dims(), &[2, 1, 16, 16]);
    // A wrong channel count is a clear error, not a convolution failure.
    let err = net
        .forward(&randn(2, &[2, 3, 16, 16])?, &conds(2)?, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected x of shape [N, 1, H, W]"), "{err}");
    Ok(())
}

#[test]
fn unet_config_validation() {
    let vb = |vm: &VarMap| seeded_varbuilder(vm, 0, DType::F32, &CPU);
    let bad = [
        UNetConfig {
            image_size: 18,
            ..UNetConfig::default()
        },
        UNetConfig {
            base_channels: 12,
            ..UNetConfig::default()
        },
        UNetConfig {
            channel_mult: vec![],
            ..UNetConfig::default()
        },
        UNetConfig {
            groups: 0,
            ..UNetConfig::default()
        },
    ];
    for cfg in bad {
        let vm = VarMap::new();
        let err = UNet::new(&cfg, vb(&vm)).unwrap_err().to_string();
        assert!(err.starts_with("unet: "), "{cfg:?}: {err}");
    }
    assert!(UNetConfig::default().validate().is_ok());
}

#[test]
fn classifier_shapes() -> Result<()> {
    let vm = VarMap::new();
    let clf = Classifier::new(
        &ClassifierConfig::default(),
        seeded_varbuilder(&vm, 0, DType::F32, &CPU),
    )?;
    assert_eq!(
        clf.forward(&randn(0, &[5, 2])?, &conds(5)?)?.dims(),
        &[5, 8]
    );

    for (channels, size) in [(1, 16), (3, 32)] {
        let vm = VarMap::new();
        let cfg = ClassifierConfig {
            net: NetConfig::Unet(small_unet(channels, size, true)),
            num_classes: 10,
        };
        let clf = Classifier::new(&cfg, seeded_varbuilder(&vm, 0, DType::F32, &CPU))?;
        let logits = clf.forward(&randn(0, &[3, channels, size, size])?, &conds(3)?)?;
        assert_eq!(logits.dims(), &[3, 10]);
        // The encoder has no up path; the head sits on the bottleneck.
        let data = vm.data().lock().unwrap();
        assert!(data.contains_key("conv_in.weight") && data.contains_key("head.linear.weight"));
        assert!(!data
            .keys()
            .any(|k| k.starts_with("up.") || k.starts_with("out.")));
    }
    Ok(())
}

#[test]
fn configs_round_trip_json() {
    let cfg = ClassifierConfig {
        net: NetConfig::Unet(UNetConfig::default()),
        num_classes: 10,
    };
    let s = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<ClassifierConfig>(&s).unwrap(), cfg);
    let m = NetConfig::Mlp(MlpConfig::default());
    let s = serde_json::to_string(&m).unwrap();
    assert!(
        s.contains(r#""embed":{"kind":"fourier","dim":64,"scale":16.0}"#),
        "{s}"
    );
    assert_eq!(serde_json::from_str::<NetConfig>(&s).unwrap(), m);
}

#[test]
fn seeded_builds_are_reproducible() -> Result<()> {
    let x = randn(3, &[4, 2])?;
    let c = conds(4)?;
    let mlp = |seed| -> Result<Vec<Vec<f32>>> {
        let vm = VarMap::new();
        let net = Mlp::new(
            &MlpConfig::default(),
            seeded_varbuilder(&vm, seed, DType::F32, &CPU),
        )?;
        net.forward(&x, &c, None)?.to_vec2()
    };
    assert_eq!(mlp(5)?, mlp(5)?);
    assert_ne!(mlp(5)?, mlp(6)?);

    let xi = randn(3, &[2, 1, 16, 16])?;
    let ci = conds(2)?;
    let unet = |seed| -> Result<(Snapshot, Vec<f32>)> {
        let vm = VarMap::new();
        let cfg = small_unet(1, 16, true);
        let net = UNet::new(&cfg, seeded_varbuilder(&vm, seed, DType::F32, &CPU))?;
        let h = net.encode(&xi, &ci, None)?.flatten_all()?.to_vec1()?;
        Ok((snapshot(&vm), h))
    };
    let (a, b, d) = (unet(5)?, unet(5)?, unet(6)?);
    assert_eq!(a, b);
    assert_ne!(a.1, d.1);
    Ok(())
}

#[test]
fn unet_starts_at_zero_and_backpropagates() -> Result<()> {
    let vm = VarMap::new();
    let cfg = small_unet(1, 16, true);
    let net = UNet::new(&cfg, seeded_varbuilder(&vm, 0, DType::F32, &CPU))?;
    let x = randn(1, &[2, 1, 16, 16])?;
    let c = conds(2)?;
    assert_eq!(max_abs(&net.forward(&x, &c, None)?)?, 0.0);

    let w = var(&vm, "out.conv.weight");
    w.set(&(randn(9, w.dims())? * 0.1)?)?;
    let out = net.forward(&x, &c, None)?;
    assert!(max_abs(&out)? > 0.0);
    let loss = (out - randn(10, &[2, 1, 16, 16])?)?.sqr()?.mean_all()?;
    let grads = loss.backward()?;
    let mut names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    for name in &names {
        let g = grads
            .get(&var(&vm, name))
            .unwrap_or_else(|| panic!("no gradient for {name}"));
        let v = g.flatten_all()?.to_vec1::<f32>()?;
        assert!(v.iter().all(|x| x.is_finite()), "{name}");
        assert!(v.iter().any(|&x| x != 0.0), "zero gradient for {name}");
    }
    Ok(())
}

/// `∇_x` of the U-Net (the path classifier guidance and divergence probes use) against a
/// central finite difference along a random direction.
#[test]
fn unet_input_gradient_matches_finite_difference() -> Result<()> {
    let vm = VarMap::new();
    let cfg = UNetConfig {
        image_size: 8,
        base_channels: 8,
        channel_mult: vec![1, 2],
        groups: 4,
        ..UNetConfig::default()
    };
    let net = UNet::new(&cfg, seeded_varbuilder(&vm, 1, DType::F32, &CPU))?;
    let w = var(&vm, "out.conv.weight");
    w.set(&(randn(9, w.dims())? * 0.3)?)?;
    let x0 = randn(2, &[2, 1, 8, 8])?;
    let c = conds(2)?;
    let r = randn(3, &[2, 1, 8, 8])?;
    let dir = randn(4, &[2, 1, 8, 8])?;
    let f = |x: &Tensor| -> Result<f64> {
        let out = net.forward(x, &c, None)?;
        Ok((out * &r)?.sum_all()?.to_scalar::<f32>()? as f64)
    };
    let x = Var::from_tensor(&x0)?;
    let out = net.forward(x.as_tensor(), &c, None)?;
    let grads = (out * &r)?.sum_all()?.backward()?;
    let g = grads.get(&x).expect("gradient for x");
    let analytic = (g * &dir)?.sum_all()?.to_scalar::<f32>()? as f64;
    let eps = 1e-2;
    let plus = f(&(&x0 + (&dir * eps)?)?)?;
    let minus = f(&(&x0 - (&dir * eps)?)?)?;
    let numeric = (plus - minus) / (2.0 * eps);
    eprintln!("directional derivative: analytic {analytic}, numeric {numeric}");
    assert!(
        (analytic - numeric).abs() < 1e-2 * analytic.abs().max(1.0),
        "analytic {analytic} numeric {numeric}"
    );
    Ok(())
}

#[test]
fn classifier_is_differentiable_in_x() -> Result<()> {
    for net in [
        NetConfig::Mlp(MlpConfig::default()),
        NetConfig::Unet(small_unet(1, 16, true)),
    ] {
        let shape = if matches!(net, NetConfig::Mlp(_)) {
            vec![3, 2]
        } else {
            vec![3, 1, 16, 16]
        };
        let vm = VarMap::new();
        let cfg = ClassifierConfig {
            net,
            num_classes: 4,
        };
        let clf = Classifier::new(&cfg, seeded_varbuilder(&vm, 0, DType::F32, &CPU))?;
        let x = Var::from_tensor(&randn(0, &shape)?)?;
        let logp =
            candle_nn::ops::log_softmax(&clf.forward(x.as_tensor(), &conds(3)?)?, D::Minus1)?;
        let picked = logp.gather(&Tensor::new(&[[0u32], [1], [2]], &CPU)?, 1)?;
        let grads = picked.sum_all()?.backward()?;
        let g = grads.get(&x).expect("gradient for x");
        assert_eq!(g.dims(), &shape[..]);
        assert!(max_abs(g)? > 0.0);
    }
    Ok(())
}

/// The default MLP written with plain candle ops from the weights in `vm`: the reference
/// for the fused bias+SiLU kernels of [`Mlp`].
fn reference_mlp(vm: &VarMap, depth: usize, x: &Tensor, c: &Tensor) -> Result<Tensor> {
    use candle_nn::Module;
    let lin = |name: &str| {
        candle_nn::Linear::new(
            var(vm, &format!("{name}.weight")).as_tensor().clone(),
            Some(var(vm, &format!("{name}.bias")).as_tensor().clone()),
        )
    };
    let emb = TimeEmbedding::new(&EmbedConfig::default(), &CPU)?.forward(c)?;
    let temb = lin("embed.proj").forward(&emb)?.silu()?;
    let mut h = lin("in").forward(&Tensor::cat(&[x, &temb], 1)?)?.silu()?;
    for i in 1..depth {
        h = lin(&format!("hidden.{i}")).forward(&h)?.silu()?;
    }
    lin("out").forward(&h)
}

#[test]
fn fused_mlp_matches_plain_candle() -> Result<()> {
    let vm = VarMap::new();
    let net = Mlp::new(
        &MlpConfig::default(),
        seeded_varbuilder(&vm, 0, DType::F32, &CPU),
    )?;
    let x = Var::from_tensor(&randn(1, &[33, 2])?)?;
    let c = conds(33)?;
    let r = randn(2, &[33, 2])?;
    let fused = net.forward(x.as_tensor(), &c, None)?;
    let plain = reference_mlp(&vm, 3, x.as_tensor(), &c)?;
    assert!(max_abs(&(&fused - &plain)?)? < 1e-5);
    let gf = (fused * &r)?.sum_all()?.backward()?;
    let gp = (plain * &r)?.sum_all()?.backward()?;
    let mut names: Vec<String> = vm.data().lock().unwrap().keys().cloned().collect();
    names.sort();
    let mut checked = vec![(String::from("x"), x)];
    checked.extend(names.iter().map(|n| (n.clone(), var(&vm, n))));
    for (name, v) in &checked {
        let (a, b) = (gf.get(v).unwrap(), gp.get(v).unwrap());
        let scale = max_abs(b)?.max(1e-3);
        let err = max_abs(&(a - b)?)?;
        assert!(err < 1e-4 * scale, "{name}: {err} vs scale {scale}");
    }
    Ok(())
}

/// An MLP fits 64 fixed points to fixed targets: the loss falls at least tenfold in 200
/// AdamW steps.
#[test]
fn mlp_overfits_a_fixed_mapping() -> Result<()> {
    let vm = VarMap::new();
    let cfg = MlpConfig {
        width: 64,
        depth: 2,
        ..MlpConfig::default()
    };
    let net = Mlp::new(&cfg, seeded_varbuilder(&vm, 0, DType::F32, &CPU))?;
    let x = randn(1, &[64, 2])?;
    let c = conds(64)?;
    let target = randn(2, &[64, 2])?;
    let params = candle_nn::ParamsAdamW {
        lr: 3e-3,
        weight_decay: 0.0,
        ..Default::default()
    };
    let mut opt = candle_nn::AdamW::new(vm.all_vars(), params)?;
    let loss =
        |net: &Mlp| -> Result<Tensor> { (net.forward(&x, &c, None)? - &target)?.sqr()?.mean_all() };
    let first = loss(&net)?.to_scalar::<f32>()?;
    for _ in 0..200 {
        opt.backward_step(&loss(&net)?)?;
    }
    let last = loss(&net)?.to_scalar::<f32>()?;
    assert!(last < first / 10.0, "loss {first} → {last}");
    Ok(())
}
