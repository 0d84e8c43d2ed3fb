//! The generated CUDA modules compiled and run as host C++ (`c++`, or `CXX`): stand-ins
//! for the CUDA names a kernel uses, one thread in one block, so a grid-stride loop
//! visits every index in order. What the tests compare with the CPU's values bit for bit.

/// Host stand-ins for the CUDA names the kernel uses: one thread, one block, so the
/// grid-stride loop visits every index in order; `sincos` as the C library's `sin` and
/// `cos` (what Rust's `sin_cos` calls).
pub const HOST_SHIM: &str = r#"#include <cmath>
#include <cstdio>
#include <cstdlib>
struct Dim { unsigned long long x; };
static const Dim blockIdx{0}, threadIdx{0}, blockDim{1}, gridDim{1};
#define __global__
#define __device__
#define __restrict__
using std::isfinite;
using std::log;
using std::sqrt;
#define sincos host_sincos
static void host_sincos(double x, double* s, double* c) { *s = std::sin(x); *c = std::cos(x); }
"#;

/// Compiles `program` (C++ with [`HOST_SHIM`] in front) for the host, runs it with `args`
/// and returns its standard output's lines.
pub fn run_on_host(program: &str, args: &[String]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("kernel_host.cpp");
    let exe = dir.path().join("kernel_host");
    std::fs::write(&src, format!("{HOST_SHIM}{program}")).unwrap();
    let compiler = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let built = std::process::Command::new(&compiler)
        .args(["-O1", "-std=c++17", "-ffp-contract=off", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap_or_else(|e| panic!("{compiler} (a C++ compiler; set CXX) could not run: {e}"));
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let run = std::process::Command::new(&exe)
        .args(args)
        .output()
        .unwrap();
    assert!(run.status.success());
    String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}
