//! The expression language: accepted forms, rejections with their messages and
//! byte ranges, lowering errors, and properties (no panics, print-parse round trip).

use proptest::prelude::*;
use sbdm_symbolic::parse::{parse_and_lower, BinOp, Scope};
use sbdm_symbolic::{parse, AstKind, Constant, Expr, ParseError};

fn scope() -> Scope {
    let mut s = Scope::new();
    for n in ["t", "x", "p", "beta", "beta_min", "beta_max", "sigma_max"] {
        s.insert_symbol(n);
    }
    s
}

fn lower(src: &str) -> Expr {
    parse_and_lower(src, &scope()).unwrap_or_else(|e| panic!("{src}: {e:?}"))
}

fn t() -> Expr {
    Expr::sym("t")
}
fn x() -> Expr {
    Expr::sym("x")
}

/// The single error of `src`, as (message, byte range, the text at the range).
fn error(src: &str) -> (String, (usize, usize), String) {
    let errs = parse_and_lower(src, &scope()).expect_err(src);
    assert_eq!(errs.len(), 1, "{src}: {errs:?}");
    let e = &errs[0];
    (
        e.message.clone(),
        (e.range.start, e.range.end),
        src[e.range.start..e.range.end].to_string(),
    )
}

/// Asserts the single error of `src` covers exactly the text `at` (its first
/// occurrence unless the text is ambiguous) and its message contains `msg`.
fn rejects(src: &str, at: &str, msg: &str) {
    let (message, range, text) = error(src);
    assert_eq!(text, at, "{src}: range {range:?}, message {message}");
    assert!(message.contains(msg), "{src}: {message:?} lacks {msg:?}");
}

// ---------------------------------------------------------------------------
// Literals

#[test]
fn number_literals() {
    for (src, v) in [
        ("1", 1.0),
        ("1.0", 1.0),
        ("1.", 1.0),
        ("1e-3", 1e-3),
        ("2.5E+3", 2500.0),
        ("1_000.5", 1000.5),
        ("2f64", 2.0),
        ("2.0_f64", 2.0),
        ("3_i32", 3.0),
        ("1e-5_f64", 1e-5),
        ("0.1", 0.1),
        ("1e20_f64", 1e20),
    ] {
        let ast = parse(src).unwrap();
        assert_eq!(ast.kind, AstKind::Num(v), "{src}");
        assert_eq!((ast.range.start, ast.range.end), (0, src.len()));
        assert_eq!(lower(src), Expr::num(v), "{src}");
    }
}

#[test]
fn bad_literals() {
    rejects(".5", ".5", "`.5` is not a Rust literal: write `0.5`");
    rejects("t * .5", ".5", "write `0.5`");
    rejects("1.5f32", "1.5f32", "`f32` literals are not supported");
    rejects("2.0_i32", "2.0_i32", "integer suffix");
    rejects("2x", "2x", "write `2 * x`");
    rejects("0x1F", "0x1F", "only decimal");
    rejects("1e999", "1e999", "too large");
}

// ---------------------------------------------------------------------------
// Names, paths, operators

#[test]
fn names_and_constants() {
    assert_eq!(lower("beta_min"), Expr::sym("beta_min"));
    assert_eq!(lower("PI"), Expr::pi());
    assert_eq!(lower("E"), Expr::e());
    for src in [
        "f64::consts::PI",
        "std::f64::consts::PI",
        "core::f64::consts::PI",
        "::std::f64::consts::PI",
    ] {
        let ast = parse(src).unwrap();
        assert_eq!(ast.kind, AstKind::Const(Constant::Pi), "{src}");
        assert_eq!(lower(src), Expr::pi());
    }
    assert_eq!(lower("std::f64::consts::E"), Expr::e());
    rejects(
        "f64::consts::TAU",
        "f64::consts::TAU",
        "supported are `PI` and `E`",
    );
    rejects("std::mem::swap", "std::mem::swap", "unsupported path");
    rejects("f64::sqrt", "f64::sqrt", "is a function");
}

#[test]
fn a_scope_binds_expressions() {
    let mut s = Scope::new();
    s.insert_symbol("t");
    s.insert("beta", 0.1 + 19.9 * t());
    s.insert("alpha", Expr::num(2.0));
    assert_eq!(s.names().collect::<Vec<_>>(), ["t", "beta", "alpha"]);
    assert_eq!(s.insert("beta", t()), Some(0.1 + 19.9 * t()));
    assert_eq!(s.names().collect::<Vec<_>>(), ["t", "beta", "alpha"]);
    assert_eq!(parse_and_lower("alpha * beta", &s).unwrap(), 2.0 * t());
    // a scope name shadows a constant, as a Rust local would
    s.insert("E", Expr::num(3.0));
    assert_eq!(parse_and_lower("E", &s).unwrap(), Expr::num(3.0));
    assert_eq!(parse_and_lower("f64::consts::E", &s).unwrap(), Expr::e());
}

#[test]
fn precedence_and_associativity() {
    let (t, x) = (t(), x());
    assert_eq!(lower("1 + t * x"), 1.0 + &t * &x);
    assert_eq!(lower("(1 + t) * x"), (1.0 + &t) * &x);
    assert_eq!(lower("t - x - 1"), (&t - &x) - 1.0);
    assert_eq!(lower("t - (x - 1)"), &t - (&x - 1.0));
    assert_eq!(lower("t / x / 2"), (&t / &x) / 2.0);
    assert_eq!(lower("t / (x / 2)"), &t / (&x / 2.0));
    assert_eq!(lower("-t * x"), -&t * &x);
    assert_eq!(lower("t - -x"), &t + &x);
    assert_eq!(lower("--t"), t.clone());
    // a method call binds tighter than unary minus: -(2^2)
    assert_eq!(lower("-2.0.powi(2)"), Expr::num(-4.0));
    assert_eq!(lower("-t.exp()"), -t.exp());

    let ast = parse("t - x - 1").unwrap();
    let AstKind::Binary {
        op: BinOp::Sub,
        lhs,
        rhs,
    } = &ast.kind
    else {
        panic!("{ast:?}")
    };
    assert!(matches!(lhs.kind, AstKind::Binary { op: BinOp::Sub, .. }));
    assert_eq!(rhs.kind, AstKind::Num(1.0));
    assert_eq!((lhs.range.start, lhs.range.end), (0, 5));
}

#[test]
fn calls_and_methods() {
    let (t, x) = (t(), x());
    assert_eq!(lower("t.sqrt()"), t.sqrt());
    assert_eq!(lower("sqrt(t)"), t.sqrt());
    assert_eq!(lower("f64::sqrt(t)"), t.sqrt());
    assert_eq!(lower("t.exp().ln()"), t.exp().ln());
    assert_eq!(lower("(1 - t).exp()"), (1.0 - &t).exp());
    assert_eq!(lower("x.powi(3)"), Expr::powi(x.clone(), 3));
    assert_eq!(lower("x.powi(-2)"), Expr::powi(x.clone(), -2));
    assert_eq!(lower("powi(x, -2)"), Expr::powi(x.clone(), -2));
    assert_eq!(lower("f64::powi(x, 2)"), Expr::powi(x.clone(), 2));
    assert_eq!(lower("x.powf(t)"), Expr::pow(x.clone(), t.clone()));
    assert_eq!(lower("x.powf(1.5)"), Expr::powf(x.clone(), 1.5));
    assert_eq!(lower("t.recip()"), t.recip());
    assert_eq!(lower("t.cbrt()"), Expr::powf(t.clone(), 1.0 / 3.0));
    assert_eq!(lower("t.exp2()"), Expr::pow(Expr::num(2.0), t.clone()));
    assert_eq!(lower("t.log10()"), t.ln() / Expr::num(10.0).ln());
    assert_eq!(lower("t.log2()"), t.ln() / Expr::num(2.0).ln());
    assert_eq!(lower("t.log(x)"), t.ln() / x.ln());
    assert_eq!(lower("log(t, x)"), t.ln() / x.ln());
    assert_eq!(lower("t.exp_m1()"), t.exp() - 1.0);
    assert_eq!(lower("t.ln_1p()"), (1.0 + &t).ln());
    assert_eq!(lower("sin(t) + cos(t,)"), t.sin() + t.cos());
    for f in sbdm_symbolic::Func::ALL {
        let name = f.name();
        assert_eq!(
            lower(&format!("t.{name}()")),
            Expr::func(f, t.clone()),
            "{name}"
        );
        assert_eq!(
            lower(&format!("{name}(t)")),
            Expr::func(f, t.clone()),
            "{name}"
        );
    }

    let ast = parse("t.powi(2)").unwrap();
    let AstKind::MethodCall {
        method,
        method_range,
        args,
        ..
    } = &ast.kind
    else {
        panic!("{ast:?}")
    };
    assert_eq!(
        (
            method.as_str(),
            method_range.start,
            method_range.end,
            args.len()
        ),
        ("powi", 2, 6, 1)
    );
    let ast = parse("f64::sqrt(t)").unwrap();
    let AstKind::Call {
        func, func_range, ..
    } = &ast.kind
    else {
        panic!("{ast:?}")
    };
    assert_eq!(
        (func.as_str(), func_range.start, func_range.end),
        ("sqrt", 0, 9)
    );
}

#[test]
fn the_design_example() {
    let beta = lower("beta_min + t * (beta_max - beta_min)");
    let mut s = scope();
    s.insert("beta", beta.clone());
    let drift = parse_and_lower("-0.5 * beta * x", &s).unwrap();
    assert_eq!(drift, -0.5 * &beta * x());
    let diffusion = parse_and_lower("beta.sqrt()", &s).unwrap();
    assert_eq!(diffusion, beta.sqrt());
}

// ---------------------------------------------------------------------------
// Syntax rejections, each at its token

#[test]
fn powers_that_are_not_rust() {
    let (message, range, _) = error("beta ^ 2");
    assert_eq!(range, (5, 6));
    assert_eq!(
        message,
        "`^` is XOR in Rust, not a power: use `u.powi(n)` for an integer power or `u.powf(p)`"
    );
    rejects("t**2", "**", "`**` is not a power operator");
    rejects("t * * 2", "* *", "use `u.powi(n)`");
}

#[test]
fn operators_that_are_not_supported() {
    rejects("t % 2", "%", "remainder");
    rejects("t < 2", "<", "comparison `<`");
    rejects("t <= 2", "<=", "comparison `<=`");
    rejects("t == x", "==", "comparison");
    rejects("t != x", "!=", "comparison");
    rejects("t > 0 && x > 0", ">", "comparison");
    rejects("t && x", "&&", "boolean operator");
    rejects("t || x", "||", "boolean operator");
    rejects("t & x", "&", "bitwise");
    rejects("t << 2", "<<", "bitwise");
    rejects("t as f32", "as f32", "`as` casts are not supported");
    rejects("t = 2", "=", "assignment");
    rejects("t += 2", "+=", "assignment");
    rejects("0..1", "..", "ranges");
    rejects("t?", "?", "`?`");
    rejects("+t", "+", "unary `+`");
    rejects("!t", "!", "not");
    rejects("&t", "&", "references");
    rejects("*t", "*", "dereference");
}

#[test]
fn constructs_that_are_not_supported() {
    rejects("|u| u * 2", "|", "closures");
    rejects("|| t", "||", "closures");
    rejects("move |u| u", "move", "closures");
    rejects("{ t }", "{", "blocks");
    rejects("t * { 2 }", "{", "blocks");
    rejects("x[0]", "[", "indexing");
    rejects("x.sqrt()[0]", "[", "indexing");
    rejects("[t, x]", "[", "arrays");
    rejects("if t > 0 { t } else { x }", "if", "conditionals");
    rejects("true", "true", "booleans");
    rejects("let y = t", "let", "`let`");
    rejects("x.foo", ".foo", "field access");
    rejects("x.0", ".0", "tuple fields");
    rejects("(t, x)", ",", "tuples");
    rejects("()", "()", "empty parentheses");
    rejects("max!(t, x)", "max!", "macro");
    rejects("2 (t)", "(", "implicit multiplication");
    rejects("\"t\"", "\"", "string literals");
    rejects("t \u{2212} x", "\u{2212}", "write `-`");
    rejects("t.powi::<i32>(2)", "::", "generic");
    rejects("t;", ";", "`;`");
    rejects("_", "_", "not a value");
}

#[test]
fn structure_errors() {
    rejects("(t + x", "(", "unclosed `(`");
    rejects("((t + x)", "(", "unclosed `(`");
    rejects("t.exp(", "(", "unclosed `(` of the call to `exp`");
    rejects("t.exp(2", "(", "unclosed `(` of the call to `exp`");
    rejects("t * (", "(", "unclosed `(`");
    rejects("t + x)", ")", "unmatched `)`");
    rejects(")", ")", "unmatched `)`");
    rejects("t +", "+", "expected an expression after `+`");
    rejects("(t + )", ")", "expected an expression, found `)`");
    rejects(
        "t x",
        "x",
        "expected an operator or the end of the expression, found `x`",
    );
    rejects("(t x)", "x", "expected an operator or `)`, found `x`");
    rejects(
        "exp(t x)",
        "x",
        "expected `,` or `)` in the arguments of `exp`",
    );
    rejects("t, x", ",", "unexpected `,`");
    rejects("t.", ".", "expected a method name");
    rejects("t.(2)", "(", "expected a method name after `.`, found `(`");
    let (message, range, _) = error("");
    assert_eq!((message.as_str(), range), ("empty expression", (0, 0)));
    let (message, range, _) = error("   ");
    assert_eq!((message.as_str(), range), ("empty expression", (0, 3)));
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let src = format!("{}t{}", "(".repeat(10_000), ")".repeat(10_000));
    let err = parse(&src).unwrap_err();
    assert!(err.message.contains("nested too deeply"), "{err:?}");
    let src = format!("{}t", "-".repeat(10_000));
    assert!(parse(&src).is_err());
    // a long flat chain is fine
    let src = vec!["t"; 3_000].join(" + ");
    assert_eq!(lower(&src), 3000.0 * t());
}

// ---------------------------------------------------------------------------
// Lowering errors

#[test]
fn unknown_names_suggest_the_closest() {
    rejects(
        "betta * t",
        "betta",
        "unknown name `betta`; did you mean `beta`?",
    );
    rejects("t * sigma_mx", "sigma_mx", "did you mean `sigma_max`?");
    rejects("pi * t", "pi", "did you mean `PI`?");
    rejects("2 * e", "e", "did you mean `E`?");
    rejects(
        "y",
        "y",
        "unknown name `y`; known names are t, x, p, beta, beta_min, beta_max, sigma_max, PI, E",
    );
    rejects(
        "exp * t",
        "exp",
        "`exp` is a function: call it as `exp(u)` or `u.exp()`",
    );
    rejects("beta(t)", "beta", "`beta` is a value, not a function");
}

#[test]
fn unsupported_functions() {
    let list = "supported are exp, exp2, exp_m1, ln, ln_1p, log, log2, log10, sqrt, cbrt, \
                recip, powi, powf, sin, cos, tan, sinh, cosh, tanh, asin, acos, atan, asinh, \
                acosh, atanh";
    let (message, range, _) = error("t.abs()");
    assert_eq!(message, format!("unsupported function `abs`: {list}"));
    assert_eq!(range, (2, 5));
    rejects("abs(t)", "abs", "unsupported function `abs`");
    rejects("f64::max(t, x)", "f64::max", "unsupported function `max`");
    rejects("t.floor()", "floor", "unsupported function `floor`");
    rejects(
        "t.mul_add(x, 1)",
        "mul_add",
        "unsupported function `mul_add`",
    );
    rejects("t.pow(2)", "pow", "use `u.powi(n)`");
}

#[test]
fn wrong_arities() {
    rejects(
        "t.sqrt(2)",
        "t.sqrt(2)",
        "`sqrt` takes no arguments: write `u.sqrt()`, found 1",
    );
    rejects(
        "sqrt(t, x)",
        "sqrt(t, x)",
        "`sqrt` takes 1 argument: write `sqrt(u)`, found 2",
    );
    rejects(
        "t.powf()",
        "t.powf()",
        "`powf` takes 1 argument: write `u.powf(p)`, found 0",
    );
    rejects(
        "powf(t)",
        "powf(t)",
        "`powf` takes 2 arguments: write `powf(u, p)`, found 1",
    );
    rejects("log(t)", "log(t)", "for the natural logarithm use `ln`");
    rejects("exp()", "exp()", "found 0");
}

#[test]
fn powi_needs_an_integer_literal() {
    for (src, at) in [
        ("t.powi(p)", "p"),
        ("t.powi(2.5)", "2.5"),
        ("t.powi(1 + 1)", "1 + 1"),
    ] {
        let (message, range, _) = error(src);
        assert_eq!(message, "powi takes an integer literal exponent; use powf");
        assert_eq!(range, (7, 7 + at.len()), "{src}");
    }
    assert_eq!(lower("t.powi((-3))"), Expr::powi(t(), -3));
    rejects(
        "t.powi(3000000000)",
        "3000000000",
        "out of the range of i32",
    );
}

#[test]
fn all_errors_are_collected() {
    let src = "betta * t.abs() + sqrt(x, 2) + gama.powi(p)";
    let errs = parse_and_lower(src, &scope()).unwrap_err();
    let found: Vec<(&str, &str)> = errs
        .iter()
        .map(|e| (&src[e.range.start..e.range.end], e.message.as_str()))
        .collect();
    assert_eq!(found.len(), 5, "{found:#?}");
    assert_eq!(
        found[0],
        ("betta", "unknown name `betta`; did you mean `beta`?")
    );
    assert_eq!(found[1].0, "abs");
    assert_eq!(found[2].0, "sqrt(x, 2)");
    assert_eq!(found[3].0, "gama");
    assert!(
        found[3].1.starts_with("unknown name `gama`"),
        "{}",
        found[3].1
    );
    assert_eq!(
        found[4],
        ("p", "powi takes an integer literal exponent; use powf")
    );
}

#[test]
fn walking_the_ast() {
    let src = "t / (1 + x) + x.exp() / t.sqrt()";
    let ast = parse(src).unwrap();
    let x = ast.find_ident("x").unwrap();
    assert_eq!((x.range.start, x.range.end), (9, 10));
    let divisors: Vec<&str> = ast
        .divisors()
        .into_iter()
        .map(|d| &src[d.range.start..d.range.end])
        .collect();
    assert_eq!(divisors, ["(1 + x)", "t.sqrt()"]);
    let mut idents = Vec::new();
    ast.walk(&mut |a| {
        if let AstKind::Ident(n) = &a.kind {
            idents.push(n.clone());
        }
    });
    assert_eq!(idents, ["t", "x", "x", "t"]);
    assert_eq!(ast.iter().count(), 12);
    assert!(ast.find_ident("beta").is_none());
}

#[test]
fn errors_display_on_one_line() {
    let e: ParseError = parse("t ^ 2").unwrap_err();
    let shown = e.to_string();
    assert!(!shown.contains('\n'));
    assert!(shown.ends_with("(bytes 2..3)"), "{shown}");
}

// ---------------------------------------------------------------------------
// Properties

/// Expressions over t and p built through the constructors.
fn arb_expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        Just(Expr::sym("t")),
        Just(Expr::sym("p")),
        Just(Expr::pi()),
        (-4i32..=9).prop_map(|n| Expr::num(f64::from(n))),
        (-1e3f64..1e3).prop_map(Expr::num),
        prop::sample::select(vec![0.5, 0.1, 1e-5, 2.5e17, 19.9, 1.0 / 3.0]).prop_map(Expr::num),
    ];
    leaf.prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a + b),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a - b),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a * b),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| a / b),
            inner.clone().prop_map(|a| -a),
            inner.clone().prop_map(|a| a.exp()),
            inner.clone().prop_map(|a| a.ln()),
            inner.clone().prop_map(|a| a.sin()),
            inner.clone().prop_map(|a| a.cos()),
            inner.clone().prop_map(|a| a.sqrt()),
            (inner.clone(), -3i32..=4).prop_map(|(a, n)| Expr::powi(a, n)),
            (inner.clone(), inner).prop_map(|(a, b)| Expr::pow(a, b)),
        ]
    })
}

/// Valid sources to mutate.
const SOURCES: [&str; 6] = [
    "beta_min + t * (beta_max - beta_min)",
    "-0.5 * beta * x",
    "beta.sqrt()",
    "1 - (-0.5 * t.powi(2) * (beta_max - beta_min) - t * beta_min).exp()",
    "sigma_max.powf(t) * (2.0 * f64::consts::PI).ln().sqrt() / (1e-3 + t)",
    "log(x, 2.5E+3) + f64::sqrt(t.powi(-2)) + x.recip().tanh()",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn random_strings_never_panic(src in "\\PC{0,40}") {
        let _ = parse_and_lower(&src, &scope());
    }

    #[test]
    fn random_token_soup_never_panics(
        toks in prop::collection::vec(
            prop::sample::select(vec![
                "t", "x", "beta", "1", "2.5", "1e-3", "(", ")", "+", "-", "*", "/", "^", ".",
                "sqrt", "powi", "(2)", ",", "::", "f64", "consts", "PI", "[", "]", "{", "as",
                "<", "=", "|", "&", "!", "?", "_", ".5", "2f64", "0x", " ",
            ]),
            0..24,
        )
    ) {
        let src = toks.concat();
        if let Err(errs) = parse_and_lower(&src, &scope()) {
            prop_assert!(!errs.is_empty());
            for e in errs {
                prop_assert!(e.range.start <= e.range.end && e.range.end <= src.len(), "{src:?}: {e:?}");
                prop_assert!(src.is_char_boundary(e.range.start) && src.is_char_boundary(e.range.end));
                prop_assert!(!e.message.contains('\n'));
            }
        }
    }

    #[test]
    fn mutated_sources_never_panic(
        which in 0..SOURCES.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, "\\PC"), 1..4),
    ) {
        let mut src: Vec<char> = SOURCES[which].chars().collect();
        for (at, kind, c) in edits {
            let c = c.chars().next().unwrap_or(' ');
            let i = at.index(src.len() + 1);
            match kind {
                0 => src.insert(i, c),
                1 if i < src.len() => { src.remove(i); }
                _ if i < src.len() => src[i] = c,
                _ => src.push(c),
            }
        }
        let src: String = src.into_iter().collect();
        if let Err(errs) = parse_and_lower(&src, &scope()) {
            for e in errs {
                prop_assert!(e.range.end <= src.len() && src.is_char_boundary(e.range.start));
            }
        }
    }

    #[test]
    fn source_round_trips(e in arb_expr()) {
        let src = e.to_source();
        let back = parse_and_lower(&src, &scope());
        prop_assert_eq!(back, Ok(e.clone()), "{}", src);
    }
}
