//! The paths that read a batch where it lies (issue 10's memory goal) against the
//! straightforward ones they replaced: the second moment against its f64 copy, the
//! `.npy` writer on views, and sampling in x_T's own storage against sampling a copy.

use candle_core::{DType, Device, Tensor};
use sbdm_runtime::io::{read_npy, write_npy};
use sbdm_runtime::model::mixture::GaussianMixture;
use sbdm_runtime::report::metrics::{mean_and_se, second_moment};
use sbdm_runtime::sampling::{Noise, Sampler, TimeGrid};
use sbdm_runtime::sde::builtin::VpSde;

/// A `[n, d]` batch of distinct values, f32.
fn batch(n: usize, d: usize) -> Tensor {
    let v: Vec<f32> = (0..n * d)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
        .collect();
    Tensor::from_vec(v, (n, d), &Device::Cpu).unwrap()
}

/// The second moment as it was computed before: an f64 copy of the batch, then per-row
/// squared norms, then their mean and standard error.
fn second_moment_by_copy(x: &Tensor) -> (f64, f64) {
    let rows: Vec<Vec<f64>> = x.to_dtype(DType::F64).unwrap().to_vec2().unwrap();
    let v: Vec<f64> = rows.iter().map(|r| r.iter().map(|a| a * a).sum()).collect();
    mean_and_se(&v)
}

#[test]
fn second_moment_where_the_batch_lies_equals_the_copy_bit_for_bit() {
    let x = batch(1000, 3);
    let views = [
        x.clone(),
        x.to_dtype(DType::F64).unwrap(),
        x.to_dtype(DType::BF16).unwrap(),
        x.narrow(0, 100, 500).unwrap(),
        x.narrow(1, 1, 2).unwrap(),  // strided
        batch(3, 1000).t().unwrap(), // transposed
    ];
    for v in &views {
        let got = second_moment(v).unwrap();
        let want = second_moment_by_copy(v);
        assert_eq!(
            (got.0.to_bits(), got.1.to_bits()),
            (want.0.to_bits(), want.1.to_bits()),
            "{:?} {:?}: {got:?} vs {want:?}",
            v.dtype(),
            v.dims()
        );
    }
}

#[test]
fn npy_of_views_holds_their_values_and_other_dtypes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let x = batch(40, 5);
    for (name, v) in [
        ("whole", x.clone()),
        ("rows", x.narrow(0, 7, 20).unwrap()),
        ("columns", x.narrow(1, 1, 3).unwrap()),
        ("transposed", x.t().unwrap()),
    ] {
        let p = dir.path().join(format!("{name}.npy"));
        write_npy(&p, &v).unwrap();
        let back = read_npy(&p, 2).unwrap();
        assert_eq!(back.dims(), v.dims(), "{name}");
        assert_eq!(
            back.to_vec2::<f32>().unwrap(),
            v.to_vec2::<f32>().unwrap(),
            "{name}"
        );
    }
    for dtype in [DType::F64, DType::BF16] {
        let dest = dir.path().join("refused.npy");
        let err = write_npy(&dest, &x.to_dtype(dtype).unwrap()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("float32") && msg.contains(&format!("{dtype:?}")),
            "{msg}"
        );
        assert!(!msg.contains('\n') && !dest.exists(), "{msg}");
    }
}

#[test]
fn sampling_in_place_equals_sampling_a_copy_for_every_sampler() {
    let sde = VpSde::default();
    let mix = GaussianMixture::ring(8, 4.0, 0.5).unwrap();
    let model = mix.model(&sde);
    let grid = TimeGrid::uniform(20);
    let (n, dev) = (256, Device::Cpu);
    for sampler in Sampler::ALL {
        let x_t = Noise::new(5, 0, n, &[2], &dev).draw().unwrap();
        let kept = x_t.to_vec2::<f32>().unwrap();
        let mut noise = Noise::new(9, 1, n, &[2], &dev);
        let copied = sampler
            .sample(&sde, &model, &x_t, &grid, &mut noise)
            .unwrap();
        // `sample` leaves x_T as it was.
        assert_eq!(x_t.to_vec2::<f32>().unwrap(), kept, "{sampler}");
        let mut noise = Noise::new(9, 1, n, &[2], &dev);
        let handle = x_t.clone();
        let in_place = sampler
            .sample_in_place(&sde, &model, x_t, &grid, &mut noise)
            .unwrap();
        assert_eq!(in_place.nfe, copied.nfe, "{sampler}");
        let want = copied.x.to_vec2::<f32>().unwrap();
        assert_eq!(in_place.x.to_vec2::<f32>().unwrap(), want, "{sampler}");
        // The state was x_T's own storage: a handle kept to it sees the samples.
        assert_eq!(handle.to_vec2::<f32>().unwrap(), want, "{sampler}");
    }
}
