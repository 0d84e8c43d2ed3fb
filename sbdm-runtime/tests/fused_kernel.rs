//! The fused step's CUDA source (sampling/fused_kernel.rs), checked in every build: one
//! kernel per form the CPU pass has, each computing that form's expression; the text is
//! snapshotted (`tests/snapshots/`). In a `cuda` build `tests/cuda_kernels.rs` compiles it
//! with NVRTC.

use sbdm_runtime::sampling::fused::MAX_SOURCES;
use sbdm_runtime::sampling::fused_kernel::{kernel_name, module_source, Form};

#[test]
fn one_kernel_per_form_with_its_expression() {
    let src = module_source();
    let forms = Form::all();
    assert_eq!(forms.len(), 2 * 2 * (MAX_SOURCES + 1));
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
        let want = match (form.reads_x, form.sources) {
            (true, 0) => "c0 * x[i]".to_string(),
            (true, 1) => "c0 * x[i] + c1 * y[i]".into(),
            (true, 2) => "c0 * x[i] + c1 * y[i] + c2 * z[i]".into(),
            (false, 0) => format!("({t})0"),
            (false, 1) => "c1 * y[i]".into(),
            (false, 2) => "c1 * y[i] + c2 * z[i]".into(),
            _ => unreachable!(),
        };
        assert!(
            kernel.contains(&format!("const {t} v = {want};")),
            "{name}:\n{kernel}"
        );
        assert!(kernel.contains("isfinite(v)") && kernel.contains("*non_finite = 1u"));
    }
}

#[test]
fn the_module_source_is_unchanged() {
    insta::assert_snapshot!(module_source());
}
