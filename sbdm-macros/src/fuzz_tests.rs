//! Robustness of the macro and the symbolic core: thousands of broken declarations,
//! none of which may panic, and the expansion time of a real one.
//!
//! Inputs come from a small seeded PRNG (reproducible, no shrinking needed: every
//! failure prints its input): random token soups, token-level mutations of valid
//! declarations fed to [`expand::expand`], and character- and expression-level
//! mutations of their [`SdeSpec`]s fed to [`derive`] directly (the macro catches
//! panics of the core, so a core panic would otherwise only show as an
//! "internal error" message).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::str::FromStr;
use std::sync::{mpsc, Once};
use std::time::{Duration, Instant};

use proc_macro2::{TokenStream, TokenTree};
use sbdm_symbolic::sde::{derive, SdeSpec};

use crate::expand;

/// Valid declarations: the built-ins (`sbdm-runtime/src/builtin.rs`) and the SDEs of
/// `tests/moments.rs`.
const CORPUS: &[&str] = &[
    VP,
    r#"
    /// Sub-VP.
    pub struct SubVpSde {
        params { beta_min: f64 = 0.1, beta_max: f64 = 20.0 }
        time = [1e-3, 1.0];
        let beta = beta_min + t * (beta_max - beta_min);
        let int_beta = beta_min * t + 0.5 * t * t * (beta_max - beta_min);
        drift = -0.5 * beta * x;
        diffusion = (beta * (1.0 - (-2.0 * int_beta).exp())).sqrt();
    }"#,
    r#"
    /// VE.
    pub struct VeSde {
        params { sigma_min: f64 = 0.01, sigma_max: f64 = 50.0 }
        time = [1e-5, 1.0];
        let sigma = sigma_min * (sigma_max / sigma_min).powf(t);
        drift = 0.0;
        diffusion = sigma * (2.0 * (sigma_max / sigma_min).ln()).sqrt();
        mean = 1.0;
        std = sigma;
    }"#,
    r#"
    pub struct EdmSde {
        params { sigma_min: f64 = 0.002, sigma_max: f64 = 80.0 }
        time = [sigma_min, sigma_max];
        mean = 1.0;
        std = t;
    }"#,
    r#"
    pub struct CosineSde {
        params { s: f64 = 0.008 }
        time = [1e-3, 0.999];
        let phi = 0.5 * PI * (t + s) / (1.0 + s);
        let phi0 = 0.5 * PI * s / (1.0 + s);
        mean = phi.cos() / phi0.cos();
        std = (1.0 - (phi.cos() / phi0.cos()).powi(2)).sqrt();
    }"#,
    r#"
    pub struct QuadBeta {
        params { b0: f64 = 0.1, b2: f64 = 15.0 }
        time = [1e-3, 1.0];
        let beta = b0 + b2 * t.powi(2);
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }"#,
    r#"
    pub struct ExpBeta {
        params { c: f64 = 0.5, k: f64 = 3.0 }
        time = [1e-3, 1.0];
        let beta = c * (k * t).exp();
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }"#,
    r#"
    pub struct ConstBeta {
        params { beta: f64 = 4.0 }
        time = [1e-3, 1.0];
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }"#,
    r#"
    pub struct TanhBeta {
        params { b0: f64 = 0.2, b1: f64 = 10.0, k: f64 = 4.0 }
        time = [1e-3, 1.0];
        let beta = b0 + b1 * (k * t).tanh();
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }"#,
    r#"
    pub struct LinearKernel {
        time = [1e-3, 0.999];
        mean = 1.0 - t;
        std = t;
    }"#,
    r#"
    pub struct GaussKernel {
        params { k: f64 = 3.0 }
        time = [1e-3, 1.0];
        let a = (-k * t * t).exp();
        mean = a;
        std = (1.0 - a * a).sqrt();
    }"#,
    r#"
    pub struct ErfBeta {
        params { b0: f64 = 0.5 }
        time = [1e-3, 1.0];
        let beta = b0 + (t * t).exp();
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }"#,
];

/// The VP declaration of `sbdm-runtime/src/builtin.rs`.
const VP: &str = r#"
    /// Variance-preserving SDE with a linear noise schedule (Song et al. 2021).
    pub struct VpSde {
        params { beta_min: f64 = 0.1, beta_max: f64 = 20.0 }
        time = [1e-3, 1.0];
        let beta = beta_min + t * (beta_max - beta_min);
        drift = -0.5 * beta * x;
        diffusion = beta.sqrt();
    }"#;

/// How many inputs a fuzz test feeds: `base` times `SBDM_FUZZ_SCALE` (default 1), for
/// longer hunts, e.g. `SBDM_FUZZ_SCALE=50 cargo test -p sbdm-macros --release fuzz_`.
fn scaled(base: usize) -> usize {
    let k: f64 = std::env::var("SBDM_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    (base as f64 * k).ceil() as usize
}

/// The PRNG of a fuzz test: its own `seed`, xor `SBDM_FUZZ_SEED` when set.
fn rng(seed: u64) -> Rng {
    let extra: u64 = std::env::var("SBDM_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Rng(seed ^ extra.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// SplitMix64: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Numbers that probe the checks: zero, signs, overflow, underflow, NaN and infinity
/// written as expressions, non-f64 literal forms.
const NUMBERS: &[&str] = &[
    "0",
    "0.0",
    "-0.0",
    "1",
    "1.0",
    "-1.0",
    "2",
    "0.5",
    "1e308",
    "-1e308",
    "1e-308",
    "1e-320",
    "1e400",
    "(0.0 / 0.0)",
    "(1.0 / 0.0)",
    "(1e308 * 1e308)",
    "(-1.0).sqrt()",
    "(0.0).ln()",
    "(-1.0).ln()",
    "(1e3).exp()",
    "f64::NAN",
    "f64::INFINITY",
    "0x10",
    "1_000.0",
    "1f64",
    "1.0f32",
    "1u8",
    "2.",
    ".5",
    "1e",
    "'c'",
    "\"s\"",
    "b'a'",
    "-t",
    "(t - t)",
    "(x - x)",
    "(1.0 - t)",
    "PI",
    "E",
    "t",
    "x",
];

/// Identifiers: the language's names, near misses, Rust keywords and oddities.
const IDENTS: &[&str] = &[
    "t",
    "x",
    "lambda",
    "beta",
    "betta",
    "beta_min",
    "beta_max",
    "PI",
    "E",
    "pi",
    "e",
    "sqrt",
    "exp",
    "ln",
    "log",
    "powi",
    "powf",
    "abs",
    "pow",
    "sin",
    "tanh",
    "recip",
    "drift",
    "diffusion",
    "mean",
    "std",
    "time",
    "params",
    "let",
    "f64",
    "f32",
    "i32",
    "self",
    "Self",
    "struct",
    "pub",
    "fn",
    "if",
    "else",
    "match",
    "loop",
    "return",
    "crate",
    "super",
    "_",
    "__private",
    "r#t",
    "r#fn",
    "NaN",
    "inf",
    "sbdm",
    "core",
    "Default",
    "a",
    "b",
    "s",
    "sigma",
    "phi",
    "k",
];

/// Punctuation and delimiters, single and joint.
const PUNCT: &[&str] = &[
    "+",
    "-",
    "*",
    "/",
    "%",
    "^",
    "=",
    "==",
    "!=",
    "<",
    ">",
    "<=",
    ">=",
    "&&",
    "||",
    "!",
    "&",
    "|",
    ".",
    "..",
    "..=",
    "::",
    ",",
    ";",
    ":",
    "?",
    "#",
    "@",
    "$",
    "~",
    "->",
    "=>",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "'a",
    "#[doc = \"d\"]",
    "///",
    "+=",
    "<<",
    ">>",
    "**",
];

/// The tokens of `src` (with proc_macro2's lexer), groups opened and closed as tokens
/// of their own, so that mutations can unbalance them.
fn flat_tokens(src: &str) -> Vec<String> {
    fn walk(ts: TokenStream, out: &mut Vec<String>) {
        for tt in ts {
            match tt {
                TokenTree::Group(g) => {
                    let (o, c) = match g.delimiter() {
                        proc_macro2::Delimiter::Parenthesis => ("(", ")"),
                        proc_macro2::Delimiter::Bracket => ("[", "]"),
                        proc_macro2::Delimiter::Brace => ("{", "}"),
                        proc_macro2::Delimiter::None => ("", ""),
                    };
                    out.push(o.to_string());
                    walk(g.stream(), out);
                    out.push(c.to_string());
                }
                other => out.push(other.to_string()),
            }
        }
    }
    let mut out = Vec::new();
    walk(TokenStream::from_str(src).expect("corpus lexes"), &mut out);
    out.retain(|s| !s.is_empty());
    out
}

fn is_number(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit())
}

fn is_ident(s: &str) -> bool {
    s.starts_with(|c: char| c.is_alphabetic() || c == '_')
}

/// One random token from the pools.
fn any_token(rng: &mut Rng) -> String {
    match rng.below(3) {
        0 => rng.pick(NUMBERS).to_string(),
        1 => rng.pick(IDENTS).to_string(),
        _ => rng.pick(PUNCT).to_string(),
    }
}

/// One mutation of a token list.
fn mutate_tokens(rng: &mut Rng, toks: &mut Vec<String>) {
    if toks.is_empty() {
        toks.push(any_token(rng));
        return;
    }
    let i = rng.below(toks.len());
    match rng.below(10) {
        0 => {
            toks.remove(i);
        }
        1 => {
            let t = toks[i].clone();
            toks.insert(i, t);
        }
        2 => {
            let j = rng.below(toks.len());
            toks.swap(i, j);
        }
        3 => {
            if i + 1 < toks.len() {
                toks.swap(i, i + 1);
            }
        }
        4 | 5 => {
            // Replace a number (or, failing that, any token) with a probing one.
            let nums: Vec<usize> = (0..toks.len()).filter(|&k| is_number(&toks[k])).collect();
            let k = if nums.is_empty() { i } else { *rng.pick(&nums) };
            toks[k] = rng.pick(NUMBERS).to_string();
        }
        6 => {
            let ids: Vec<usize> = (0..toks.len()).filter(|&k| is_ident(&toks[k])).collect();
            let k = if ids.is_empty() { i } else { *rng.pick(&ids) };
            toks[k] = rng.pick(IDENTS).to_string();
        }
        7 => toks.truncate(i),
        8 => toks.insert(i, any_token(rng)),
        _ => {
            // Copy a whole run of tokens elsewhere (e.g. a second `drift = ...;`).
            let len = 1 + rng.below(12);
            let run: Vec<String> = toks[i..(i + len).min(toks.len())].to_vec();
            let at = rng.below(toks.len() + 1);
            for (n, t) in run.into_iter().enumerate() {
                toks.insert(at + n, t);
            }
        }
    }
}

/// Whether every punctuation character of `ts` is one `proc_macro` accepts (the first
/// that is not): the fallback `proc_macro2` used outside a macro accepts any, and a
/// real expansion panics on the others (`error_between` once used `_`).
fn check_punct(ts: TokenStream) -> Result<(), char> {
    for tt in ts {
        match tt {
            TokenTree::Group(g) => check_punct(g.stream())?,
            TokenTree::Punct(p) if !"=<>!~+-*/%^&|@.,;:#$?'".contains(p.as_char()) => {
                return Err(p.as_char());
            }
            _ => {}
        }
    }
    Ok(())
}

/// Expands `input` and checks the output: no panic, no internal error, only valid
/// punctuation, and a successful expansion is valid Rust without `inf`/`NaN` names.
fn expand_ok(input: TokenStream, what: &str) -> Result<bool, String> {
    let mut user = None;
    idents(input.clone(), &mut user);
    let out = catch_unwind(AssertUnwindSafe(|| expand::expand(input)))
        .map_err(|_| format!("expand panicked on {what}"))?;
    check_punct(out.clone())
        .map_err(|c| format!("expand emitted the invalid punctuation `{c}` on {what}"))?;
    let text = out.to_string();
    if text.contains("internal error") {
        return Err(format!("internal error on {what}:\n{text}"));
    }
    let failed = text.contains("compile_error");
    if !failed {
        let file: syn::File = syn::parse2(out)
            .map_err(|e| format!("expansion does not parse ({e}) on {what}:\n{text}"))?;
        // A non-finite number printed as code (unless the user wrote the name).
        let mut bad = None;
        idents(quote::quote!(#file), &mut bad);
        if let Some(b) = bad.filter(|_| user.is_none()) {
            return Err(format!("expansion contains `{b}` on {what}:\n{text}"));
        }
    }
    Ok(!failed)
}

/// The last of the identifiers `inf`, `NaN`, `nan` in `ts`.
fn idents(ts: TokenStream, found: &mut Option<String>) {
    for tt in ts {
        match tt {
            TokenTree::Group(g) => idents(g.stream(), found),
            TokenTree::Ident(i) if ["inf", "NaN", "nan"].contains(&&*i.to_string()) => {
                *found = Some(i.to_string());
            }
            _ => {}
        }
    }
}

/// Seconds one input may take before it counts as a hang.
const HANG_S: u64 = 30;

/// Runs `f` on a thread of its own (named `fuzz-input`, whose caught panics print one
/// line): its result, or `None` after [`HANG_S`] seconds, leaving the thread behind.
fn on_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some("fuzz-input") {
                eprintln!("caught panic: {info}");
            } else {
                prev(info);
            }
        }));
    });
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("fuzz-input".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn a fuzz thread");
    rx.recv_timeout(Duration::from_secs(HANG_S)).ok()
}

/// Runs `derive` on `spec`, failing on a panic or a hang.
fn derive_ok(spec: &SdeSpec) -> Result<bool, String> {
    let s = spec.clone();
    on_thread(move || catch_unwind(|| derive(&s).is_ok()))
        .ok_or_else(|| format!("derive hangs (> {HANG_S} s) on {spec:?}"))?
        .map_err(|_| format!("derive panicked on {spec:?}"))
}

/// [`expand_ok`] on the tokens of `src`, failing on a hang too.
fn expand_src_ok(src: &str) -> Result<bool, String> {
    let s = src.to_string();
    on_thread(move || {
        let ts = TokenStream::from_str(&s).expect("lexed before");
        expand_ok(ts, &format!("`{s}`"))
    })
    .ok_or_else(|| {
        format!(
            "expand hangs (> {HANG_S} s) on `{}`",
            src.replace('\n', " ")
        )
    })?
}

/// Token-level mutations of the valid declarations, through the whole macro.
#[test]
fn fuzz_expand_mutations() {
    let corpus: Vec<Vec<String>> = CORPUS.iter().map(|s| flat_tokens(s)).collect();
    let specs: Vec<SdeSpec> = CORPUS.iter().map(|s| spec_of(s)).collect();
    let mut rng = rng(0x5DE5_0001);
    let (mut fed, mut expanded, mut unlexable) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    let failures = {
        let mut failures = Vec::new();
        while fed < scaled(6000) {
            let src = if rng.chance(35) {
                // Expression-level: valid syntax, odd mathematics.
                let mut spec = rng.pick(&specs).clone();
                mutate_spec(&mut rng, &mut spec);
                spec.to_source()
            } else {
                let mut toks = rng.pick(&corpus).clone();
                for _ in 0..1 + rng.below(4) {
                    mutate_tokens(&mut rng, &mut toks);
                }
                toks.join(" ")
            };
            // Unbalanced delimiters cannot reach a macro: rustc rejects them first.
            if TokenStream::from_str(&src).is_err() {
                unlexable += 1;
                continue;
            };
            fed += 1;
            match expand_src_ok(&src) {
                Ok(ok) => expanded += ok as usize,
                Err(e) => failures.push(e),
            }
        }
        failures
    };
    eprintln!(
        "fuzz_expand_mutations: {fed} inputs ({expanded} expanded, {unlexable} unlexable skipped) in {:.1?}",
        start.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    // The mutations must not all be rejected early: some still derive.
    assert!(
        expanded > 100,
        "only {expanded} mutated declarations expanded"
    );
}

/// Random token soups, bare and inside a `struct` body, through the whole macro.
#[test]
fn fuzz_expand_soup() {
    let mut rng = rng(0x5DE5_0002);
    let (mut fed, mut unlexable) = (0usize, 0usize);
    let start = Instant::now();
    let failures = {
        let mut failures = Vec::new();
        while fed < scaled(4000) {
            let n = rng.below(40);
            let soup: Vec<String> = (0..n).map(|_| any_token(&mut rng)).collect();
            let src = match rng.below(4) {
                0 => soup.join(" "),
                1 => format!("pub struct S {{ {} }}", soup.join(" ")),
                2 => format!(
                    "struct S {{ time = [1e-3, 1.0]; drift = {}; diffusion = 1.0; }}",
                    soup.join(" ")
                ),
                _ => format!(
                    "struct S {{ params {{ p: f64 = 1.0 }} time = [1e-3, 1.0]; mean = 1.0; std = {}; }}",
                    soup.join(" ")
                ),
            };
            if TokenStream::from_str(&src).is_err() {
                unlexable += 1;
                continue;
            };
            fed += 1;
            if let Err(e) = expand_src_ok(&src) {
                failures.push(e);
            }
        }
        failures
    };
    eprintln!(
        "fuzz_expand_soup: {fed} inputs ({unlexable} unlexable skipped) in {:.1?}",
        start.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The `SdeSpec` of a corpus declaration, as the macro builds it (text of the tokens).
fn spec_of(src: &str) -> SdeSpec {
    sbdm_syntax::Decl::parse(TokenStream::from_str(src).expect("lexes"))
        .expect("corpus parses")
        .spec()
}

/// A random expression over `t`, `x` and `names`, up to `depth` deep.
fn random_expr(rng: &mut Rng, names: &[String], depth: usize) -> String {
    if depth == 0 || rng.chance(25) {
        return match rng.below(5) {
            0 => rng.pick(NUMBERS).to_string(),
            1 => rng
                .pick(&["0.5", "1.0", "2.0", "3.0", "0.1", "10.0"])
                .to_string(),
            2 if !names.is_empty() => rng.pick(names).clone(),
            3 => "x".to_string(),
            _ => "t".to_string(),
        };
    }
    let a = random_expr(rng, names, depth - 1);
    match rng.below(9) {
        0 => format!(
            "{a} {} {}",
            rng.pick(&["+", "-", "*", "/"]),
            random_expr(rng, names, depth - 1)
        ),
        1 => format!("-{a}"),
        2 => format!("({a})"),
        3 => format!(
            "({a}).powi({})",
            rng.pick(&["0", "1", "2", "-1", "3", "-2", "40", "2.5"])
        ),
        4 => format!("({a}).powf({})", random_expr(rng, names, depth - 1)),
        5 => format!("({a}).log({})", random_expr(rng, names, depth - 1)),
        _ => {
            const FUNCS: &[&str] = &[
                "exp", "exp2", "exp_m1", "ln", "ln_1p", "log2", "log10", "sqrt", "cbrt", "recip",
                "sin", "cos", "tan", "sinh", "cosh", "tanh", "asin", "acos", "atan", "asinh",
                "acosh", "atanh",
            ];
            let f = rng.pick(FUNCS);
            if rng.chance(50) {
                format!("({a}).{f}()")
            } else {
                format!("{f}({a})")
            }
        }
    }
}

/// One character-level mutation of a source string (on char boundaries).
fn mutate_chars(rng: &mut Rng, s: &mut String) {
    const CHARS: &[char] = &[
        '0',
        '1',
        '9',
        '.',
        'e',
        'E',
        '-',
        '+',
        '*',
        '/',
        '(',
        ')',
        ' ',
        't',
        'x',
        '_',
        '^',
        ',',
        ';',
        '\'',
        '"',
        '\\',
        '\u{2212}',
        '\u{d7}',
        '\u{b2}',
        '\u{e9}',
        '\u{1F600}',
        '\0',
        '\n',
        '#',
        '!',
        ':',
        '[',
        ']',
    ];
    let idx: Vec<usize> = s.char_indices().map(|(i, _)| i).chain([s.len()]).collect();
    let i = *rng.pick(&idx);
    match rng.below(4) {
        0 if i < s.len() => {
            s.remove(i);
        }
        1 => s.insert(i, *rng.pick(CHARS)),
        2 => s.truncate(i),
        _ => {
            let n = rng.pick(NUMBERS);
            s.insert_str(i, n);
        }
    }
}

/// One to three mutations of a spec's expressions, sometimes a dropped or renamed part.
fn mutate_spec(rng: &mut Rng, spec: &mut SdeSpec) {
    let mut names: Vec<String> = spec.params.iter().map(|p| p.name.clone()).collect();
    names.extend(spec.lets.iter().map(|(n, _)| n.clone()));
    for _ in 0..1 + rng.below(3) {
        // Pick a slot: a param default, a time bound, a let, or one of the forms.
        let n_params = spec.params.len();
        let n_lets = spec.lets.len();
        let slot = rng.below(n_params + 2 + n_lets + 4);
        let target: Option<&mut String> = if slot < n_params {
            spec.params[slot].default.as_mut()
        } else if slot < n_params + 2 {
            spec.time
                .as_mut()
                .map(|(a, b)| if slot == n_params { a } else { b })
        } else if slot < n_params + 2 + n_lets {
            Some(&mut spec.lets[slot - n_params - 2].1)
        } else {
            match slot - n_params - 2 - n_lets {
                0 => Some(spec.drift.get_or_insert_with(String::new)),
                1 => Some(spec.diffusion.get_or_insert_with(String::new)),
                2 => Some(spec.mean.get_or_insert_with(String::new)),
                _ => Some(spec.std.get_or_insert_with(String::new)),
            }
        };
        let Some(target) = target else { continue };
        match rng.below(5) {
            0 | 1 => mutate_chars(rng, target),
            2 => *target = random_expr(rng, &names, 4),
            3 => *target = format!("{} * x", random_expr(rng, &names, 3)),
            _ => *target = rng.pick(NUMBERS).to_string(),
        }
    }
    // Sometimes drop or rename a part.
    match rng.below(12) {
        0 => spec.time = None,
        1 => spec.drift = None,
        2 => spec.mean = None,
        3 if !spec.params.is_empty() => spec.params[0].default = None,
        4 if !spec.params.is_empty() => {
            spec.params[0].name = rng.pick(IDENTS).to_string();
        }
        5 if !spec.lets.is_empty() => spec.lets[0].0 = rng.pick(IDENTS).to_string(),
        _ => {}
    }
}

/// Mutated `SdeSpec`s straight into the core: character-level damage, random
/// expressions in each slot, and probing values for params and time bounds.
#[test]
fn fuzz_derive_specs() {
    let corpus: Vec<SdeSpec> = CORPUS.iter().map(|s| spec_of(s)).collect();
    for s in &corpus {
        assert!(derive(s).is_ok(), "corpus declaration {} derives", s.name);
    }
    let mut rng = rng(0x5DE5_0003);
    let start = Instant::now();
    let mut derived = 0usize;
    let n = scaled(4000);
    let mut slowest = (0.0, String::new());
    let failures = {
        let mut failures = Vec::new();
        for _ in 0..n {
            let mut spec = rng.pick(&corpus).clone();
            mutate_spec(&mut rng, &mut spec);
            let t0 = Instant::now();
            match derive_ok(&spec) {
                Ok(ok) => derived += ok as usize,
                Err(e) => failures.push(e),
            }
            // Pathological declarations (a pole of F inside the range) are slow (nested
            // quadrature), but a hang is a bug.
            let dt = t0.elapsed().as_secs_f64();
            if dt > 30.0 {
                failures.push(format!("derive took {dt:.1} s on {spec:#?}"));
            }
            if dt > slowest.0 {
                slowest = (dt, format!("{spec:?}"));
            }
        }
        failures
    };
    eprintln!(
        "fuzz_derive_specs: {n} specs ({derived} derived) in {:.1?}; slowest {:.2} s: {}",
        start.elapsed(),
        slowest.0,
        slowest.1
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert!(derived > 50, "only {derived} mutated specs derived");
}

/// Deeply nested and very long expressions: no stack overflow, no blow-up.
#[test]
fn fuzz_derive_deep() {
    let base = spec_of(VP);
    let mut cases = Vec::new();
    for depth in [16, 64, 128] {
        cases.push(format!("{}t{}", "(".repeat(depth), ")".repeat(depth)));
        cases.push(format!("{}t{}", "-".repeat(depth), ""));
        cases.push(format!("{}t{}", "(1.0 + ".repeat(depth), ")".repeat(depth)));
        cases.push(format!("t{}", ".sqrt()".repeat(depth.min(24))));
        cases.push(format!("{}1.0", "t * ".repeat(depth)));
        cases.push(format!("{}1.0", "1.0 / ".repeat(depth)));
    }
    {
        for c in &cases {
            for slot in 0..3 {
                let mut spec = base.clone();
                match slot {
                    0 => spec.diffusion = Some(c.clone()),
                    1 => spec.drift = Some(format!("{c} * x")),
                    _ => spec.lets[0].1 = c.clone(),
                }
                let t0 = Instant::now();
                derive_ok(&spec).unwrap_or_else(|e| panic!("{e}"));
                let dt = t0.elapsed();
                assert!(dt.as_secs_f64() < 5.0, "derive took {dt:.1?} on `{c}`");
            }
        }
    }
}

/// Expansion time of the VP declaration (no timed assertion: printed for the record).
/// Run optimised: `cargo test -p sbdm-macros --release expand_vp_declaration -- --nocapture`.
#[test]
fn expand_vp_declaration() {
    let input = TokenStream::from_str(VP).expect("lexes");
    let mut times = Vec::new();
    let squash = |s: &str| s.split_whitespace().collect::<String>();
    for _ in 0..20 {
        let t0 = Instant::now();
        let out = expand::expand(input.clone());
        times.push(t0.elapsed().as_secs_f64() * 1e3);
        let text = squash(&out.to_string());
        assert!(
            text.contains(&squash("impl ::sbdm::__private::GaussianKernel")),
            "{text}"
        );
        assert!(!text.contains("compile_error"), "{text}");
    }
    times.sort_by(f64::total_cmp);
    println!(
        "expand_vp_declaration: median {:.3} ms (min {:.3}, max {:.3}) over 20 expansions",
        (times[9] + times[10]) / 2.0,
        times[0],
        times[19]
    );
}
