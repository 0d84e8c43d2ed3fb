//! `sbdm bench step`: one sampler step's tensor update `x ← c0·x + c1·y + c2·z` three ways
//! in one run: the fused in-place op ([`sbdm_runtime::sampling::fused::axpbypcz`]), the
//! same update as a chain of candle ops (what a sampler without fused steps does,
//! allocating a fresh tensor per op), and a plain copy of the buffer (the memory bandwidth
//! the fused op is judged against). And a stochastic step `x ← c0·x + c1·y + c2·ξ` two
//! ways: with the Philox noise `ξ` generated inside the pass
//! ([`sbdm_runtime::sampling::fused::combine_noisy`]), and drawn into a fresh tensor
//! first, then added by the fused pass (what a step does with a drawn noise tensor).

use std::hint::black_box;

use anyhow::{bail, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use sbdm_runtime::sampling::fused;

use super::{allocator, check_count, philox_draws, time};

/// Arguments of `sbdm bench step`.
#[derive(Args, Debug)]
pub struct StepArgs {
    /// Number of f32 elements per buffer (2^24 = 64 MiB).
    #[arg(long, default_value_t = 1 << 24)]
    pub elements: usize,
    /// Timed iterations of each variant; the median is reported.
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
}

fn buffer(n: usize, phase: usize) -> Vec<f32> {
    (0..n).map(|i| ((i + phase) % 1000) as f32 * 1e-3).collect()
}

/// Runs `sbdm bench step`.
pub fn step(a: &StepArgs) -> Result<()> {
    let (n, iters) = (a.elements, a.iters);
    if n == 0 || iters == 0 {
        bail!("--elements and --iters must be at least 1");
    }
    // Eight f32 buffers (one a noise draw); six lists of timings.
    check_count("--elements", n, 32)?;
    check_count("--iters", iters, 48)?;
    let dev = Device::Cpu;
    let (c0, c1, c2) = (0.5, 0.3, 0.2); // a convex combination: values stay bounded
    let x = Tensor::from_vec(buffer(n, 0), n, &dev)?;
    let y = Tensor::from_vec(buffer(n, 1), n, &dev)?;
    let z = Tensor::from_vec(buffer(n, 2), n, &dev)?;

    let fused_t = time(iters, || {
        fused::axpbypcz(&x, c0, &y, c1, &z, c2)?;
        Ok(())
    })?;
    // As a sampler loop without fused steps: each step replaces x by a fresh tensor.
    let mut xc = x.copy()?;
    let chain_t = time(iters, || {
        xc = fused::axpbypcz_unfused(&xc, c0, &y, c1, &z, c2)?;
        Ok(())
    })?;
    let src = buffer(n, 3);
    let mut dst = vec![0f32; n];
    let copy_t = time(iters, || {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
        Ok(())
    })?;
    let tcopy_t = time(iters, || {
        black_box(x.copy()?);
        Ok(())
    })?;
    // The stochastic step on rows of up to 1024 values (an image-like sample), each row
    // its own stream; every iteration a new draw.
    let per = 1usize << n.trailing_zeros().min(10);
    let (xr, yr) = (x.reshape((n / per, per))?, y.reshape((n / per, per))?);
    let mut next_noise = philox_draws(1, n / per, per);
    let in_pass_t = time(iters, || {
        let noise = next_noise();
        fused::combine_noisy(&xr, Some(c0), &[(c1, &yr)], (c2, noise.fill))?;
        Ok(())
    })?;
    let drawn_t = time(iters, || {
        let xi = next_noise().materialise(&dev, candle_core::DType::F32)?;
        fused::axpbypcz(&xr, c0, &yr, c1, &xi, c2)?;
        Ok(())
    })?;

    let mb = |buffers: usize| (buffers * n * 4) as f64;
    let gbs = |bytes: f64, s: f64| bytes / s / 1e9;
    let rows = [
        (
            "fused axpbypcz (in place)",
            fused_t,
            mb(4),
            "3 read + 1 write",
        ),
        (
            "chain of candle ops",
            chain_t,
            mb(4),
            "same 4 buffers (logical)",
        ),
        ("copy (into reused Vec)", copy_t, mb(2), "1 read + 1 write"),
        ("Tensor::copy (fresh)", tcopy_t, mb(2), "1 read + 1 write"),
        (
            "noisy, noise in the pass",
            in_pass_t,
            mb(3),
            "2 read + 1 write",
        ),
        (
            "noisy, noise drawn first",
            drawn_t,
            mb(5),
            "noise written, then 3 read + 1 write",
        ),
    ];
    println!(
        "x <- {c0}x + {c1}y + {c2}z on {n} f32 ({:.0} MiB per buffer), median of {iters}",
        mb(1) / (1024.0 * 1024.0)
    );
    println!(
        "allocator: {}; threads: 1 (the fused op, candle's elementwise CPU ops and the copy are \
         sequential loops; candle's pool, used for matmul, has {}); the noisy steps: {} \
         (Philox noise, rows of {per}, on sbdm's pool)",
        allocator(),
        candle_core::utils::get_num_threads(),
        sbdm_runtime::parallel::threads()
    );
    if cfg!(debug_assertions) {
        println!("warning: debug build; build with --release for meaningful numbers");
    }
    println!(
        "{:<28} {:>10} {:>10} {:>8}   bytes counted",
        "variant", "median ms", "min ms", "GB/s"
    );
    for (name, (med, min), bytes, note) in rows {
        println!(
            "{name:<28} {:>10.2} {:>10.2} {:>8.2}   {note}",
            med * 1e3,
            min * 1e3,
            gbs(bytes, med)
        );
    }
    let speedup = chain_t.0 / fused_t.0;
    let share = gbs(mb(4), fused_t.0) / gbs(mb(2), copy_t.0);
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "fused vs chain: {speedup:.2}x faster (target >= 3x: {})",
        verdict(speedup >= 3.0)
    );
    println!(
        "fused bandwidth: {:.0}% of the copy's (target >= 70%: {})",
        share * 100.0,
        verdict(share >= 0.7)
    );
    println!(
        "noise in the pass vs drawn first: {:.2}x faster",
        drawn_t.0 / in_pass_t.0
    );
    Ok(())
}
