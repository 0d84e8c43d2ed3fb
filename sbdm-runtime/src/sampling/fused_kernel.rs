//! The fused pass `x ← [c0·x +] c1·y [+ c2·z] [+ cn·ξ]` as CUDA C: one kernel per form (f32
//! or f64; reading `x` or not; 0, 1 or 2 sources; with or without noise), the forms
//! [`super::fused`] runs on the CPU. The noise `ξ` is Philox noise computed inside the
//! pass by [`super::philox_kernel`]'s device function and loop (the values
//! [`normal_at`](super::philox::normal_at) gives on the CPU, element `i` being value
//! `i mod per` of stream `first_stream + i / per`; a thread a Philox block of four
//! values), so a stochastic step reads no noise from memory.
//! The coefficients are kernel arguments, computed on the host from each SDE's derived
//! coefficients by the step algebra, so one module serves every declared SDE and every
//! sampler; it is compiled with NVRTC at first use in a `cuda` build
//! (`fused::cuda`) and is plain text here, so every build can print, snapshot and
//! compile-check it.
//!
//! Each kernel is a grid-stride loop over `n` contiguous elements; a non-finite result sets
//! `*non_finite = 1` (the host reads it after the pass, like the CPU loop's flag).
//!
//! ```
//! use sbdm_runtime::sampling::fused_kernel::{kernel_name, module_source, Form};
//! let form = Form { double: false, reads_x: true, sources: 2, noise: false };
//! assert_eq!(kernel_name(form), "sbdm_combine_f32_x_2");
//! let noisy = Form { noise: true, ..form };
//! assert_eq!(kernel_name(noisy), "sbdm_combine_f32_x_2_noise");
//! assert!(module_source().contains("sbdm_combine_f64_nox_1_noise"));
//! ```

use super::philox_kernel::{device_functions, noise_loop};

/// The form of one pass: its float type, whether `x`'s old value is read, how many
/// sources (0 to [`super::fused::MAX_SOURCES`]), whether Philox noise is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Form {
    /// f64 (`double`) rather than f32 (`float`).
    pub double: bool,
    /// Whether the pass reads `x` (`c0·x` is a term).
    pub reads_x: bool,
    /// How many sources besides `x`.
    pub sources: usize,
    /// Whether the pass adds `cn·ξ`, Philox noise generated in the kernel.
    pub noise: bool,
}

impl Form {
    /// Every form, in the module's order.
    pub fn all() -> Vec<Form> {
        let mut v = Vec::new();
        for noise in [false, true] {
            for double in [false, true] {
                for reads_x in [true, false] {
                    for sources in 0..=super::fused::MAX_SOURCES {
                        v.push(Form {
                            double,
                            reads_x,
                            sources,
                            noise,
                        });
                    }
                }
            }
        }
        v
    }
}

/// The kernel's name: `sbdm_combine_{f32|f64}_{x|nox}_{sources}[_noise]`.
pub fn kernel_name(form: Form) -> String {
    format!(
        "sbdm_combine_{}_{}_{}{}",
        if form.double { "f64" } else { "f32" },
        if form.reads_x { "x" } else { "nox" },
        form.sources,
        if form.noise { "_noise" } else { "" }
    )
}

/// The name of the module holding every form's kernel.
pub const MODULE: &str = "sbdm_fused";

/// One form's kernel.
fn kernel_source(form: Form) -> String {
    let t = if form.double { "double" } else { "float" };
    let names = ["y", "z"];
    let mut params = format!("{t}* __restrict__ x");
    for s in &names[..form.sources] {
        params.push_str(&format!(", const {t}* __restrict__ {s}"));
    }
    params.push_str(&format!(
        ", {t} c0, {t} c1, {t} c2, unsigned long long n, unsigned int* non_finite"
    ));
    if form.noise {
        params.push_str(&format!(
            ", {t} cn, unsigned long long per, unsigned long long seed, \
             unsigned long long first_stream, unsigned int draw"
        ));
    }
    let mut terms: Vec<String> = Vec::new();
    if form.reads_x {
        terms.push("c0 * x[i]".into());
    }
    for (k, s) in names[..form.sources].iter().enumerate() {
        terms.push(format!("c{} * {s}[i]", k + 1));
    }
    if form.noise {
        // The f32 value, widened in an f64 pass (as a drawn noise tensor would be).
        terms.push(format!("cn * ({t})xi[lane]"));
    }
    let value = if terms.is_empty() {
        format!("({t})0")
    } else {
        terms.join(" + ")
    };
    let body = format!("const {t} v = {value};\nfinite &= isfinite(v);\nx[i] = v;");
    // A noiseless pass visits the elements; a noisy one the Philox blocks of its rows.
    let loop_ = if form.noise {
        format!(
            "    const unsigned long long rows = n / per;\n{}",
            noise_loop(&body)
        )
    } else {
        let body: String = body.lines().map(|l| format!("        {l}\n")).collect();
        format!(
            "    for (unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;\n\
             \x20        i < n; i += (unsigned long long)gridDim.x * blockDim.x) {{\n\
             {body}\
             \x20   }}\n"
        )
    };
    // The unused coefficients keep one signature for every form.
    format!(
        "extern \"C\" __global__ void {name}({params}) {{\n\
         \x20   (void)c0; (void)c1; (void)c2;\n\
         \x20   bool finite = true;\n\
         {loop_}\
         \x20   if (!finite) {{ *non_finite = 1u; }}\n\
         }}\n",
        name = kernel_name(form),
    )
}

/// The CUDA C source of the module: every form's kernel.
pub fn module_source() -> String {
    let mut s = String::from(
        "// Generated by sbdm (sampling/fused_kernel.rs): x <- [c0*x +] c1*y [+ c2*z] [+ cn*noise].\n\n",
    );
    s.push_str(&device_functions());
    for form in Form::all() {
        s.push('\n');
        s.push_str(&kernel_source(form));
    }
    s
}
