//! The fused step's CUDA source (sampling/fused_kernel.rs), checked in every build: one
//! kernel per form the CPU pass has, each computing that form's expression (the noise
//! forms adding Philox noise through the noise module's device function); the text is
//! snapshotted (`tests/snapshots/`). In a `cuda` build `tests/cuda_kernels.rs` compiles it
//! with NVRTC; `tests/philox.rs` compiles it for the host and checks a noise form against
//! the CPU pass.

use sbdm_runtime::sampling::fused::MAX_SOURCES;
use sbdm_runtime::sampling::fused_kernel::{kernel_name, module_source, Form};
use sbdm_runtime::sampling::philox_kernel::{device_functions, NORMAL_BLOCK};

#[test]
fn one_kernel_per_form_with_its_expression() {
    let src = module_source();
    let forms = Form::all();
    assert_eq!(forms.len(), 2 * 2 * 2 * (MAX_SOURCES + 1));
    // The noise module's device functions, once.
    assert_eq!(src.matches(&device_functions()).count(), 1);
    for form in forms {
        let name = kernel_name(form);
        assert_eq!(
            src.matches(&format!("void {name}(")).count(),
            1,
            "{name} defined once"
        );
        let kernel = &src[src.find(&format!("void {name}(")).unwrap()..];
        let kernel = &kernel[..kernel.find("\n}\n").unwrap()];
        let t = if form.double { "double" } else { "float" };
        let noise = format!("cn * ({t})xi[lane]");
        let want = match (form.reads_x, form.sources, form.noise) {
            (true, 0, false) => "c0 * x[i]".to_string(),
            (true, 1, false) => "c0 * x[i] + c1 * y[i]".into(),
            (true, 2, false) => "c0 * x[i] + c1 * y[i] + c2 * z[i]".into(),
            (false, 0, false) => format!("({t})0"),
            (false, 1, false) => "c1 * y[i]".into(),
            (false, 2, false) => "c1 * y[i] + c2 * z[i]".into(),
            (true, 0, true) => format!("c0 * x[i] + {noise}"),
            (true, 1, true) => format!("c0 * x[i] + c1 * y[i] + {noise}"),
            (true, 2, true) => format!("c0 * x[i] + c1 * y[i] + c2 * z[i] + {noise}"),
            (false, 0, true) => noise.clone(),
            (false, 1, true) => format!("c1 * y[i] + {noise}"),
            (false, 2, true) => format!("c1 * y[i] + c2 * z[i] + {noise}"),
            _ => unreachable!(),
        };
        assert!(
            kernel.contains(&format!("const {t} v = {want};")),
            "{name}:\n{kernel}"
        );
        assert!(kernel.contains("isfinite(v)") && kernel.contains("*non_finite = 1u"));
        assert_eq!(
            kernel.contains("unsigned int draw"),
            form.noise,
            "{name}: noise parameters"
        );
        // A noise form runs the noise module's loop over Philox blocks.
        assert_eq!(
            kernel.contains(&format!(
                "{NORMAL_BLOCK}(seed, first_stream + row, draw, block, xi)"
            )),
            form.noise,
            "{name}: noise loop"
        );
    }
}

#[test]
fn the_module_source_is_unchanged() {
    insta::assert_snapshot!(module_source());
}
