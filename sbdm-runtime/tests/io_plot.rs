//! Atomic writes, `.npy` validation and PNG scatter plots.

use candle_core::{DType, Device, Tensor};
use sbdm_runtime::error::Error;
use sbdm_runtime::io::{read_npy, write_atomic, write_npy, PendingFile};
use sbdm_runtime::report::plot::{scatter_png, Mark, ScatterConfig, Series};

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_failed_write_leaves_nothing_and_keeps_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.txt");
    std::fs::write(&dest, "old").unwrap();
    let err = write_atomic(&dest, |tmp| {
        std::fs::write(tmp, "half").unwrap();
        Err(Error::Invalid("stopped".into()))
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "stopped");
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "old");
    assert_eq!(entries(dir.path()), ["out.txt"]);
    // An uncommitted pending file is removed when dropped.
    let p = PendingFile::new(dir.path().join("x.npy")).unwrap();
    assert!(p.path().exists() && p.path().extension().unwrap() == "npy");
    drop(p);
    assert_eq!(entries(dir.path()), ["out.txt"]);
    // A successful write replaces the file.
    write_atomic(&dest, |tmp| {
        std::fs::write(tmp, "new").map_err(|source| Error::Io {
            path: tmp.display().to_string(),
            source,
        })
    })
    .unwrap();
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new");
    assert_eq!(entries(dir.path()), ["out.txt"]);
}

#[test]
fn missing_directory_is_an_error_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let err = PendingFile::new(dir.path().join("no/such/x.npy")).unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn npy_round_trip_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let x = Tensor::new(&[[1f32, -2.5], [3.0, 4.25]], &Device::Cpu).unwrap();
    let p = dir.path().join("x.npy");
    write_npy(&p, &x).unwrap();
    assert_eq!(
        read_npy(&p, 2).unwrap().to_vec2::<f32>().unwrap(),
        x.to_vec2::<f32>().unwrap()
    );
    // Wrong rank.
    let err = read_npy(&p, 3).unwrap_err();
    assert!(err.to_string().contains("rank"), "{err}");
    // float64 is rejected on read and on write.
    let p64 = dir.path().join("x64.npy");
    x.to_dtype(DType::F64).unwrap().write_npy(&p64).unwrap();
    let err = read_npy(&p64, 2).unwrap_err();
    assert!(err.to_string().contains("float32"), "{err}");
    assert!(write_npy(dir.path().join("y.npy"), &x.to_dtype(DType::F64).unwrap()).is_err());
    // Not an .npy file, and a missing one: one-line messages naming the file.
    let txt = dir.path().join("t.npy");
    std::fs::write(&txt, "hello").unwrap();
    for path in [txt, dir.path().join("missing.npy")] {
        let msg = read_npy(&path, 2).unwrap_err().to_string();
        assert!(
            msg.contains(path.file_name().unwrap().to_str().unwrap()),
            "{msg}"
        );
        assert_eq!(msg.lines().count(), 1, "{msg}");
    }
    assert!(!dir.path().join("y.npy").exists());
}

/// The `.npy` writer against candle's reader for every rank used (vectors, batches,
/// images), with the header aligned to 64 bytes as numpy writes it.
#[test]
fn npy_files_read_back_in_every_shape() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..120).map(|i| i as f32 * 0.37 - 11.0).collect();
    for dims in [
        vec![120],
        vec![60, 2],
        vec![5, 4, 6],
        vec![2, 3, 4, 5],
        vec![0, 2],
    ] {
        let n: usize = dims.iter().product();
        let x = Tensor::from_vec(values[..n].to_vec(), dims.as_slice(), &Device::Cpu).unwrap();
        let p = dir.path().join("x.npy");
        write_npy(&p, &x).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header) % 64, 0, "{dims:?}");
        assert_eq!(bytes.len(), 10 + header + 4 * n);
        let back = Tensor::read_npy(&p).unwrap();
        assert_eq!(back.dims(), dims.as_slice());
        assert_eq!(
            back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            values[..n].to_vec()
        );
    }
}

#[test]
fn scatter_plot_is_a_png() {
    let dir = tempfile::tempdir().unwrap();
    let pts: Vec<f32> = (0..400)
        .map(|i| ((i * 7919) % 1000) as f32 / 250.0 - 2.0)
        .collect();
    let x = Tensor::from_vec(pts, (200, 2), &Device::Cpu).unwrap();
    let series = [
        Series::from_tensor("samples", &x, Mark::Dot, 1000).unwrap(),
        Series {
            label: "means".into(),
            points: vec![[0.0, 0.0]],
            mark: Mark::Cross,
        },
    ];
    let dest = dir.path().join("s.png");
    let cfg = ScatterConfig {
        title: "test".into(),
        width: 320,
        height: 240,
        ..Default::default()
    };
    scatter_png(&dest, &series, &cfg).unwrap();
    let bytes = std::fs::read(&dest).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // Width and height from the IHDR chunk.
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    assert_eq!((be(16), be(20)), (320, 240));
    assert_eq!(entries(dir.path()), ["s.png"]);
    // One-dimensional samples cannot be scattered.
    let x1 = Tensor::zeros((5, 1), DType::F32, &Device::Cpu).unwrap();
    assert!(Series::from_tensor("x", &x1, Mark::Dot, 10).is_err());
}

#[test]
fn psnr_and_ssim_of_known_pairs() {
    use sbdm_runtime::report::metrics::{psnr, ssim};
    let dev = candle_core::Device::Cpu;
    let a = candle_core::Tensor::new(&[[0.0f32, 0.5, -0.5, 1.0]], &dev).unwrap();
    // Identical: 100 dB and SSIM 1.
    assert_eq!(psnr(&a, &a, 2.0).unwrap(), 100.0);
    assert!((ssim(&a, &a, 2.0).unwrap() - 1.0).abs() < 1e-12);
    // A constant offset of 0.2: MSE 0.04, PSNR = 10·log10(4/0.04) = 20 dB; the offset
    // leaves the structure term at 1 and lowers the luminance term.
    let b = a.affine(1.0, 0.2).unwrap();
    assert!((psnr(&a, &b, 2.0).unwrap() - 20.0).abs() < 1e-5);
    let (mu, mv, c1) = (0.25f64, 0.45f64, 0.0004f64);
    let want = (2.0 * mu * mv + c1) / (mu * mu + mv * mv + c1);
    assert!((ssim(&a, &b, 2.0).unwrap() - want).abs() < 1e-5);
    // Negated structure: SSIM below 0.
    assert!(ssim(&a, &a.affine(-1.0, 0.5).unwrap(), 2.0).unwrap() < 0.0);
    assert!(psnr(
        &a,
        &candle_core::Tensor::zeros((1, 3), candle_core::DType::F32, &dev).unwrap(),
        2.0
    )
    .is_err());
}
