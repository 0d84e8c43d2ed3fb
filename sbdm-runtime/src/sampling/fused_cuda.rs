//! The fused pass on CUDA storage (the `cuda` feature): the kernels of
//! [`super::fused_kernel`], compiled with NVRTC once per process and loaded once per
//! device, launched on the tensors' own stream; the non-finite flag is read back after
//! the pass, as on the CPU. A pass with noise launches the `_noise` form, which computes
//! the Philox values itself.

use std::sync::OnceLock;

use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CudaStorage, Layout};

use super::cuda_module;
use super::fused::{Pass, NON_FINITE};
use super::fused_kernel::{kernel_name, module_source, Form, MODULE};
use super::philox_kernel::items;

/// The module's PTX, or why NVRTC could not compile it.
static PTX: OnceLock<std::result::Result<String, String>> = OnceLock::new();

impl Pass {
    /// Runs the pass on CUDA storage: `dst` and the sources, each with its layout.
    pub(super) fn cuda(
        &self,
        dst: &mut CudaStorage,
        dst_l: &Layout,
        srcs: &[(&CudaStorage, &Layout)],
    ) -> candle_core::Result<()> {
        let Some((da, db)) = dst_l.contiguous_offsets() else {
            candle_core::bail!("sbdm fused pass: x must be contiguous");
        };
        let n = db - da;
        let mut ranges = Vec::with_capacity(srcs.len());
        for (_, l) in srcs {
            let Some((a, b)) = l.contiguous_offsets() else {
                candle_core::bail!("sbdm fused pass: sources must be contiguous");
            };
            if b - a != n {
                candle_core::bail!("sbdm fused pass: {} elements vs {n}", b - a);
            }
            ranges.push(a..b);
        }
        let dev = dst.device.clone();
        let form = Form {
            double: matches!(dst.slice, CudaStorageSlice::F64(_)),
            reads_x: self.c_x.is_some(),
            sources: srcs.len(),
            noise: self.noise.is_some(),
        };
        let ptx = cuda_module::ptx(&PTX, module_source, "the fused step kernels")?;
        let func = dev.get_or_load_custom_func(&kernel_name(form), MODULE, ptx)?;
        let flag = dev.alloc_zeros::<u32>(1)?;
        let n = n as u64;
        let c0 = self.c_x.unwrap_or(0.0);
        let [c1, c2] = self.c;
        // A noise form's launch covers the rows' Philox blocks (`apply` has checked that
        // x is whole rows of the noise's width).
        let noise = self
            .noise
            .map(|(c_n, fill)| (c_n, fill, fill.per.max(1) as u64));
        let cfg = cuda_module::grid_for(match noise {
            Some((_, _, per)) => items(n / per, per),
            None => n,
        });
        macro_rules! launch {
            ($variant:ident, $t:ty) => {{
                let CudaStorageSlice::$variant(x) = &mut dst.slice else {
                    unreachable!("the form follows the dtype");
                };
                let mut x = x.slice_mut(da..db);
                let mut views = Vec::with_capacity(srcs.len());
                for ((s, _), r) in srcs.iter().zip(&ranges) {
                    let CudaStorageSlice::$variant(v) = &s.slice else {
                        candle_core::bail!("sbdm fused pass: dtype mismatch");
                    };
                    views.push(v.slice(r.clone()));
                }
                let (c0, c1, c2) = (c0 as $t, c1 as $t, c2 as $t);
                let mut builder = func.builder();
                builder.arg(&mut x);
                for v in &views {
                    builder.arg(v);
                }
                builder.arg(&c0);
                builder.arg(&c1);
                builder.arg(&c2);
                builder.arg(&n);
                builder.arg(&flag);
                let noise = noise.map(|(c_n, fill, per)| (c_n as $t, fill, per));
                if let Some((c_n, fill, per)) = &noise {
                    builder.arg(c_n);
                    builder.arg(per);
                    builder.arg(&fill.seed);
                    builder.arg(&fill.first_stream);
                    builder.arg(&fill.draw);
                }
                // SAFETY: the arguments match the kernel's signature (fused_kernel.rs):
                // x, the sources, three coefficients of x's type, n, the flag, and for a
                // noise form the noise's coefficient of x's type, per, seed, first stream
                // and draw; every slice holds n elements (checked above).
                #[allow(unsafe_code, reason = "a kernel launch is an FFI call")]
                unsafe { builder.launch(cfg) }.w()?;
            }};
        }
        match &dst.slice {
            CudaStorageSlice::F32(_) => launch!(F32, f32),
            CudaStorageSlice::F64(_) => launch!(F64, f64),
            _ => candle_core::bail!("sbdm fused pass: only f32 and f64 are supported"),
        }
        if dev.clone_dtoh(&flag)?[0] != 0 {
            candle_core::bail!("{}", NON_FINITE);
        }
        Ok(())
    }
}
