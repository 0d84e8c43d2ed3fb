//! Compiled kernel modules kept on disk between runs: a module's PTX under a name that is
//! a hash of its source and of the compiler that made it, so a `cuda` build compiles each
//! generated module with NVRTC once per machine rather than once per process (about a
//! second each here), and a changed source or compiler never finds a stale file.
//!
//! Where: `SBDM_KERNEL_CACHE` if set (`off` keeps nothing), else
//! `$XDG_CACHE_HOME/sbdm/kernels`, else `$HOME/.cache/sbdm/kernels`. The cache is only a
//! cache: a directory that cannot be read or written means compiling every time, never an
//! error; files are written atomically, so a run that dies mid-write leaves none half
//! written.
//!
//! ```
//! use sbdm_runtime::sampling::kernel_cache::compiled;
//! let dir = tempfile::tempdir().unwrap();
//! let compile = |src: &str| Ok::<_, String>(format!("// compiled\n{src}"));
//! let first = compiled(Some(dir.path()), "cc 1", "kernel text", compile).unwrap();
//! // The second time the file is read; the compiler is not called.
//! let again = compiled(Some(dir.path()), "cc 1", "kernel text", |_| Err("not called".into()));
//! assert_eq!(again.unwrap(), first);
//! ```

use std::path::{Path, PathBuf};

/// The directory compiled modules are kept in, or `None` when the cache is off or no
/// directory is known (see the module's documentation).
pub fn dir() -> Option<PathBuf> {
    match std::env::var_os("SBDM_KERNEL_CACHE") {
        Some(v) if v == "off" || v.is_empty() => None,
        Some(v) => Some(PathBuf::from(v)),
        None => std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
            .map(|c| c.join("sbdm").join("kernels")),
    }
}

/// FNV-1a, 64 bits: a stable name for a text (not a defence against anyone).
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The compiled form of `source`: read from `dir` when an earlier run kept it there,
/// else `compile(source)`, then kept (when `dir` is writable). `compiler` names the
/// compiler and its version, and is part of the file's name with the source.
pub fn compiled(
    dir: Option<&Path>,
    compiler: &str,
    source: &str,
    compile: impl FnOnce(&str) -> Result<String, String>,
) -> Result<String, String> {
    let path = dir.map(|d| d.join(format!("{:016x}.ptx", fnv1a(&[compiler, source]))));
    if let Some(kept) = path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .filter(|t| !t.is_empty())
    {
        return Ok(kept);
    }
    let out = compile(source)?;
    if let (Some(dir), Some(path)) = (dir, &path) {
        // A cache: failing to keep the file costs only the next run's compile.
        if std::fs::create_dir_all(dir).is_ok() {
            let _ = crate::io::write_file_atomic(path, &out);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn compiles_once_then_reads_what_it_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("kernels"); // made on first use
        let calls = Cell::new(0);
        let compile = |src: &str| {
            calls.set(calls.get() + 1);
            Ok(format!("ptx of {src}"))
        };
        let get =
            |compiler: &str, source: &str| compiled(Some(&dir), compiler, source, compile).unwrap();
        assert_eq!(get("nvrtc 13.5", "a"), "ptx of a");
        assert_eq!(get("nvrtc 13.5", "a"), "ptx of a");
        assert_eq!(calls.get(), 1, "the second run reads the file");
        // Another source, or another compiler: compiled anew, kept beside.
        assert_eq!(get("nvrtc 13.5", "b"), "ptx of b");
        assert_eq!(get("nvrtc 13.6", "a"), "ptx of a");
        assert_eq!(calls.get(), 3);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
        // An empty file (not one this writes) is compiled over.
        for entry in std::fs::read_dir(&dir).unwrap() {
            std::fs::write(entry.unwrap().path(), "").unwrap();
        }
        assert_eq!(get("nvrtc 13.5", "a"), "ptx of a");
        assert_eq!(calls.get(), 4);
    }

    #[test]
    fn no_usable_directory_means_compiling_every_time() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("a-file");
        std::fs::write(&file, "not a directory").unwrap();
        let calls = Cell::new(0);
        for dir in [None, Some(file.as_path()), Some(&file.join("below"))] {
            for _ in 0..2 {
                let out = compiled(dir, "cc", "src", |s| {
                    calls.set(calls.get() + 1);
                    Ok(s.to_uppercase())
                });
                assert_eq!(out.unwrap(), "SRC");
            }
        }
        assert_eq!(calls.get(), 6);
        // A compile error is the caller's, and nothing is kept.
        let dir = tmp.path().join("kept");
        let err = compiled(Some(&dir), "cc", "bad", |_| Err("syntax error".into()));
        assert_eq!(err.unwrap_err(), "syntax error");
        assert!(!dir.exists() || std::fs::read_dir(&dir).unwrap().count() == 0);
    }

    #[test]
    fn the_name_is_stable() {
        // FNV-1a 64 of nothing (its offset basis) and of "a\0" (each part ends in a zero
        // byte): a change of the hash would orphan every kept file.
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&["a"]), 0x089b_e207_b544_f1e4);
        // The separators keep the parts apart.
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
    }
}
