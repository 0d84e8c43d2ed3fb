//! The fused step's CUDA source (sampling/fused_kernel.rs), checked in every build: one
//! kernel per form the CPU pass has, each computing that form's expression (the noise
//! forms adding Philox noise through the noise module's device function); the text is
//! snapshotted (`tests/snapshots/`). In a `cuda` build `tests/cuda_kernels.rs` compiles it
//! with NVRTC. Compiled for the host as C++, every form gives the CPU pass's bits.

use candle_core::{DType, Device, Tensor};
use sbdm_runtime::sampling::fused::{combine, combine_noisy, MAX_SOURCES};
use sbdm_runtime::sampling::fused_kernel::{kernel_name, module_source, Form};
use sbdm_runtime::sampling::philox::PhiloxFill;
use sbdm_runtime::sampling::philox_kernel::{device_functions, NORMAL_BLOCK};

#[path = "common/cuda_host.rs"]
mod cuda_host;
use cuda_host::run_on_host;
#[path = "common/lcg.rs"]
mod lcg;

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

/// The coefficients every form runs with in [`every_form_on_the_host_is_the_cpu_pass`]:
/// c0, c1, c2, cn.
const C: [f64; 4] = [0.75, -1.5, 0.625, 0.5];

/// A host `main` running every form of the module on the same x, y, z (rows of `per`),
/// each from a fresh copy of x, printing each result's bits (f32 as 8 hex digits, f64 as
/// 16), the forms in [`Form::all`]'s order.
fn every_form_main(v: [&[f64]; 3], per: usize, fill: &PhiloxFill) -> String {
    let n = v[0].len();
    let list = |v: &[f64]| {
        v.iter()
            .map(|d| format!("{d:e}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut calls = String::new();
    for form in Form::all() {
        let (t, s) = if form.double {
            ("double", "")
        } else {
            ("float", "f")
        };
        let mut args = vec!["w".to_string()];
        args.extend(
            ["y", "z"][..form.sources]
                .iter()
                .map(|a| format!("{a}_{t}")),
        );
        args.extend(C[..3].iter().map(|c| format!("{c:e}{s}")));
        args.extend(["n".into(), "&non_finite".into()]);
        if form.noise {
            args.push(format!("{:e}{s}", C[3]));
            args.push(format!(
                "{per}ull, {}ull, {}ull, {}u",
                fill.seed, fill.first_stream, fill.draw
            ));
        }
        calls.push_str(&format!(
            "    {{ {t} w[n]; for (unsigned long long i = 0; i < n; ++i) w[i] = x_{t}[i];\n\
             \x20     {}({}); print_bits(w, n); }}\n",
            kernel_name(form),
            args.join(", ")
        ));
    }
    format!(
        r#"
#include <cstring>
static void print_bits(const float* v, unsigned long long n) {{
    for (unsigned long long i = 0; i < n; ++i) {{ unsigned int b; std::memcpy(&b, &v[i], 4); printf("%08x\n", b); }}
}}
static void print_bits(const double* v, unsigned long long n) {{
    for (unsigned long long i = 0; i < n; ++i) {{ unsigned long long b; std::memcpy(&b, &v[i], 8); printf("%016llx\n", b); }}
}}
int main() {{
    const unsigned long long n = {n};
    const double x_double[n] = {{{x}}}, y_double[n] = {{{y}}}, z_double[n] = {{{z}}};
    float x_float[n], y_float[n], z_float[n];
    for (unsigned long long i = 0; i < n; ++i) {{
        x_float[i] = (float)x_double[i]; y_float[i] = (float)y_double[i]; z_float[i] = (float)z_double[i];
    }}
    (void)y_float; (void)z_float; (void)y_double; (void)z_double;
    unsigned int non_finite = 0;
{calls}    return (int)non_finite;
}}
"#,
        x = list(v[0]),
        y = list(v[1]),
        z = list(v[2]),
    )
}

/// The CPU pass of `form` on x, y, z as rows of `per`, the result's bits as
/// [`every_form_main`] prints them.
fn cpu_pass(form: Form, v: [&[f64]; 3], per: usize, fill: &PhiloxFill) -> Vec<String> {
    let dtype = if form.double { DType::F64 } else { DType::F32 };
    let tensor = |v: &[f64]| {
        Tensor::from_slice(v, (v.len() / per, per), &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    };
    let (x, y, z) = (tensor(v[0]), tensor(v[1]), tensor(v[2]));
    let c_x = form.reads_x.then_some(C[0]);
    let sources: Vec<(f64, &Tensor)> = [(C[1], &y), (C[2], &z)][..form.sources].to_vec();
    if form.noise {
        combine_noisy(&x, c_x, &sources, (C[3], *fill)).unwrap();
    } else {
        combine(&x, c_x, &sources).unwrap();
    }
    let x = x.flatten_all().unwrap();
    if form.double {
        let v: Vec<f64> = x.to_vec1().unwrap();
        v.iter().map(|d| format!("{:016x}", d.to_bits())).collect()
    } else {
        let v: Vec<f32> = x.to_vec1().unwrap();
        v.iter().map(|f| format!("{:08x}", f.to_bits())).collect()
    }
}

#[test]
fn every_form_on_the_host_is_the_cpu_pass() {
    // The generated module compiled as C++ with host stand-ins for the CUDA names, every
    // form run on the same values: each result bit-equal to the CPU pass (`combine`, or
    // `combine_noisy` generating the same Philox draw), f32 and f64, reading x or not,
    // 0–2 sources; rows of 5 values, so each row's second Philox block is cut short.
    let (rows, per) = (3, 5);
    let fill = PhiloxFill {
        seed: 0x0123_4567_89ab_cdef,
        first_stream: (1 << 32) + 9,
        draw: 4,
        per,
    };
    let (x, y, z) = (
        lcg::values(rows * per, 7),
        lcg::values(rows * per, 8),
        lcg::values(rows * per, 9),
    );
    let v = [x.as_slice(), y.as_slice(), z.as_slice()];
    let got = run_on_host(
        &format!("{}{}", module_source(), every_form_main(v, per, &fill)),
        &[],
    );
    let forms = Form::all();
    assert_eq!(got.len(), forms.len() * rows * per);
    for (form, got) in forms.iter().zip(got.chunks(rows * per)) {
        assert_eq!(
            got,
            cpu_pass(*form, v, per, &fill),
            "{}",
            kernel_name(*form)
        );
    }
}
