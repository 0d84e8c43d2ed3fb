//! Parsing the macro's expression language (Rust expression syntax) into an [`Ast`]
//! with byte ranges, and lowering it to an [`crate::Expr`].
//!
//! This is the one parser of the project: the `sde!` macro joins an expression's
//! tokens into a string and calls [`parse`], the `sbdm derive` CLI calls it on the
//! user's text. The language is the subset of Rust expressions an SDE coefficient
//! needs:
//!
//! - decimal literals (`1`, `1.0`, `1e-3`, `2.5E+3`, `1_000.5`, `2f64`, `2.0_f64`, `3_i32`),
//! - names, and the constants `PI`, `E`, `f64::consts::PI`, `std::f64::consts::E`, ...,
//! - `+ - * /` with Rust's precedence and left associativity, unary `-`, parentheses,
//! - calls `f(a)`, `f64::sqrt(u)` and method calls `u.f()`, `u.f(a)`, chained.
//!
//! Functions, in call and method form (`sqrt(u)`, `u.sqrt()`, `f64::sqrt(u)`): `exp`,
//! `exp2`, `exp_m1`, `ln`, `ln_1p`, `log` (`u.log(base)`), `log2`, `log10`, `sqrt`,
//! `cbrt`, `recip`, `powi` (integer literal exponent), `powf`, `sin`, `cos`, `tan`,
//! `sinh`, `cosh`, `tanh`, `asin`, `acos`, `atan`, `asinh`, `acosh`, `atanh`. They lower
//! to the core's forms: `sqrt(u)` is `u^0.5`, `log10(u)` is `ln(u)/ln(10)`, `exp2(u)` is
//! `2^u`, `recip(u)` is `u^-1`, and `cbrt(u)` is `u^(1/3)` — which, like every
//! non-integer power, is real only for `u >= 0`, while Rust's `cbrt` of a negative
//! number is real.
//!
//! Everything else (`^`, `**`, `%`, comparisons, casts, closures, blocks, indexing, ...)
//! is rejected by [`parse`] with a one-line message and the byte range of the
//! offending token. [`Ast::lower`] then resolves names against a [`Scope`] and the
//! function table, collecting every error of the expression.
//!
//! ```
//! use sbdm_symbolic::parse::{parse_and_lower, Scope};
//! use sbdm_symbolic::Expr;
//!
//! let mut scope = Scope::new();
//! scope.insert_symbol("t");
//! scope.insert_symbol("beta");
//! let e = parse_and_lower("-0.5 * beta.sqrt() / t", &scope).unwrap();
//! let (t, beta) = (Expr::sym("t"), Expr::sym("beta"));
//! assert_eq!(e, -0.5 * beta.sqrt() / t);
//!
//! let err = &parse_and_lower("betta ^ 2", &scope).unwrap_err()[0];
//! assert_eq!((err.range.start, err.range.end), (6, 7));
//! assert!(err.message.starts_with("`^` is XOR in Rust"));
//! ```

use std::fmt;
use std::ops::Range;

use crate::expr::{Constant, Expr, Func};

/// A byte range into the parsed source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SrcRange {
    /// first byte
    pub start: usize,
    /// one past the last byte
    pub end: usize,
}

impl SrcRange {
    /// The range `start..end`.
    pub fn new(start: usize, end: usize) -> Self {
        SrcRange { start, end }
    }
    /// Its length in bytes.
    pub fn len(self) -> usize {
        self.end - self.start
    }
    /// Whether it is empty.
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
    /// From the start of `self` to the end of `other`.
    pub fn to(self, other: SrcRange) -> SrcRange {
        SrcRange::new(self.start, other.end)
    }
}

impl From<Range<usize>> for SrcRange {
    fn from(r: Range<usize>) -> Self {
        SrcRange::new(r.start, r.end)
    }
}

impl From<SrcRange> for Range<usize> {
    fn from(r: SrcRange) -> Self {
        r.start..r.end
    }
}

impl fmt::Display for SrcRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A parse or lowering error at a byte range.
#[derive(Clone, Debug, PartialEq)]
pub struct ParseError {
    /// where
    pub range: SrcRange,
    /// what, one line
    pub message: String,
}

impl ParseError {
    /// An error at `range`.
    pub fn new(range: impl Into<SrcRange>, message: impl Into<String>) -> Self {
        ParseError {
            range: range.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (bytes {})", self.message, self.range)
    }
}

impl std::error::Error for ParseError {}

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
}

impl BinOp {
    /// Its source symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

/// A parsed expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Ast {
    /// what it is
    pub kind: AstKind,
    /// where it is
    pub range: SrcRange,
}

/// The kinds of surface expression.
#[derive(Clone, Debug, PartialEq)]
pub enum AstKind {
    /// A number literal, suffix and `_` separators removed.
    Num(f64),
    /// A constant written as a path: `f64::consts::PI`, `std::f64::consts::E`, ...
    /// (a bare `PI` or `E` is an [`AstKind::Ident`], resolved when lowering).
    Const(Constant),
    /// A name.
    Ident(String),
    /// `-operand`
    Neg(Box<Ast>),
    /// `lhs op rhs`
    Binary {
        /// the operator
        op: BinOp,
        /// left operand
        lhs: Box<Ast>,
        /// right operand
        rhs: Box<Ast>,
    },
    /// `func(args)`; for `f64::sqrt(u)` the name is `sqrt` and the range covers the path.
    Call {
        /// the function's name
        func: String,
        /// where the function's name (or path) is
        func_range: SrcRange,
        /// the arguments
        args: Vec<Ast>,
    },
    /// `receiver.method(args)`
    MethodCall {
        /// the value the method is called on
        receiver: Box<Ast>,
        /// the method's name
        method: String,
        /// where the method's name is
        method_range: SrcRange,
        /// the arguments after the receiver
        args: Vec<Ast>,
    },
    /// `(inner)`
    Paren(Box<Ast>),
}

impl Ast {
    /// The direct sub-expressions, in source order.
    pub fn children(&self) -> Vec<&Ast> {
        match &self.kind {
            AstKind::Num(_) | AstKind::Const(_) | AstKind::Ident(_) => Vec::new(),
            AstKind::Neg(a) | AstKind::Paren(a) => vec![a],
            AstKind::Binary { lhs, rhs, .. } => vec![lhs, rhs],
            AstKind::Call { args, .. } => args.iter().collect(),
            AstKind::MethodCall { receiver, args, .. } => {
                std::iter::once(&**receiver).chain(args).collect()
            }
        }
    }

    /// Every node, this one first, then its children's nodes in source order (pre-order).
    pub fn iter(&self) -> AstIter<'_> {
        AstIter { stack: vec![self] }
    }

    /// Calls `f` on every node in the order of [`Ast::iter`].
    pub fn walk(&self, f: &mut dyn FnMut(&Ast)) {
        self.iter().for_each(f)
    }

    /// The first occurrence of the name `name` (as an [`AstKind::Ident`]).
    pub fn find_ident(&self, name: &str) -> Option<&Ast> {
        self.iter()
            .find(|a| matches!(&a.kind, AstKind::Ident(n) if n == name))
    }

    /// The right operand of every `/`, in source order.
    pub fn divisors(&self) -> Vec<&Ast> {
        self.iter()
            .filter_map(|a| match &a.kind {
                AstKind::Binary {
                    op: BinOp::Div,
                    rhs,
                    ..
                } => Some(&**rhs),
                _ => None,
            })
            .collect()
    }

    /// Resolves names against `scope` (then `PI` and `E`) and functions against the
    /// function table, and builds the expression. Every error of the expression is
    /// reported, not just the first.
    pub fn lower(&self, scope: &Scope) -> Result<Expr, Vec<ParseError>> {
        let mut errors = Vec::new();
        match lower(self, scope, &mut errors) {
            Some(e) if errors.is_empty() => Ok(e),
            _ => Err(errors),
        }
    }
}

/// The pre-order iterator of [`Ast::iter`].
#[derive(Clone, Debug)]
pub struct AstIter<'a> {
    stack: Vec<&'a Ast>,
}

impl<'a> Iterator for AstIter<'a> {
    type Item = &'a Ast;
    fn next(&mut self) -> Option<&'a Ast> {
        let node = self.stack.pop()?;
        self.stack.extend(node.children().into_iter().rev());
        Some(node)
    }
}

/// Parses an expression.
///
/// Stops at the first syntax error; names and functions are checked by [`Ast::lower`].
pub fn parse(src: &str) -> Result<Ast, ParseError> {
    let toks = tokenize(src)?;
    if toks.is_empty() {
        return Err(ParseError::new(0..src.len(), "empty expression"));
    }
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        depth: 0,
        open_parens: 0,
    };
    let ast = p.expr(0)?;
    match p.peek() {
        None => Ok(ast),
        Some(t) => Err(p.trailing(t)),
    }
}

/// [`parse`] then [`Ast::lower`].
pub fn parse_and_lower(src: &str, scope: &Scope) -> Result<Expr, Vec<ParseError>> {
    parse(src).map_err(|e| vec![e])?.lower(scope)
}

/// The names an expression may use, each bound to an expression (a symbol, or the
/// value of an earlier `let`), in insertion order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scope {
    entries: Vec<(String, Expr)>,
}

impl Scope {
    /// An empty scope (`PI` and `E` are always known).
    pub fn new() -> Self {
        Scope::default()
    }
    /// Binds `name` to `value`, returning the previous value; a rebound name keeps
    /// its position.
    pub fn insert(&mut self, name: impl Into<String>, value: Expr) -> Option<Expr> {
        let name = name.into();
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.entries.push((name, value));
                None
            }
        }
    }
    /// Binds `name` to the symbol `name`.
    pub fn insert_symbol(&mut self, name: &str) -> Option<Expr> {
        self.insert(name, Expr::sym(name))
    }
    /// The value bound to `name`.
    pub fn get(&self, name: &str) -> Option<&Expr> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
    /// Whether `name` is bound.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    /// The bound names, in insertion order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.entries.iter().map(|(n, _)| n.as_str())
    }
    /// How many names are bound.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether no name is bound.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<S: Into<String>> FromIterator<(S, Expr)> for Scope {
    fn from_iter<I: IntoIterator<Item = (S, Expr)>>(iter: I) -> Self {
        let mut s = Scope::new();
        for (n, v) in iter {
            s.insert(n, v);
        }
        s
    }
}

// ---------------------------------------------------------------------------
// Tokens

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Punct(&'static str),
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    range: SrcRange,
}

/// Longest first.
const PUNCTS: [&str; 46] = [
    "..=", "::", "..", "==", "!=", "<=", ">=", "&&", "||", "<<", ">>", "+=", "-=", "*=", "/=",
    "%=", "^=", "->", "=>", "+", "-", "*", "/", "%", "^", "(", ")", "[", "]", "{", "}", ",", ".",
    ";", ":", "<", ">", "=", "!", "&", "|", "?", "#", "@", "$", "~",
];

const INT_SUFFIXES: [&str; 12] = [
    "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize",
];

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn ident_end(src: &str, start: usize) -> usize {
    src[start..]
        .char_indices()
        .find(|&(_, c)| !is_ident_continue(c))
        .map_or(src.len(), |(i, _)| start + i)
}

fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut toks = Vec::new();
    let mut i = 0;
    while let Some(c) = src[i..].chars().next() {
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let (tok, end) = if c.is_ascii_digit() {
            number(src, i)?
        } else if is_ident_start(c) {
            let end = ident_end(src, i);
            (Tok::Ident(src[i..end].to_string()), end)
        } else if let Some(p) = PUNCTS.iter().find(|p| src[i..].starts_with(**p)) {
            (Tok::Punct(p), i + p.len())
        } else {
            return Err(unexpected_char(c, i));
        };
        toks.push(Token {
            tok,
            range: SrcRange::new(i, end),
        });
        i = end;
    }
    Ok(toks)
}

fn unexpected_char(c: char, at: usize) -> ParseError {
    let message = match c {
        '"' => "string literals are not supported".to_string(),
        '\'' => "character literals and lifetimes are not supported".to_string(),
        '\u{2212}' | '\u{2013}' => format!("`{c}` is not ASCII: write `-`"),
        '\u{d7}' | '\u{b7}' | '\u{22c5}' => format!("`{c}` is not ASCII: write `*`"),
        '\u{f7}' => format!("`{c}` is not ASCII: write `/`"),
        '\u{b2}' | '\u{b3}' => {
            format!("superscript `{c}` is not supported: use `u.powi(n)` for an integer power")
        }
        '\\' => "unexpected `\\`".to_string(),
        _ => format!("unexpected character `{c}`"),
    };
    ParseError::new(at..at + c.len_utf8(), message)
}

/// Lexes a decimal literal the way Rust does: digits and `_`, an optional fraction
/// (a `.` not followed by `.`, `_` or a name, so `1.max(2)` and `1..2` are not
/// fractions), an optional exponent and an optional suffix.
fn number(src: &str, start: usize) -> Result<(Tok, usize), ParseError> {
    let b = src.as_bytes();
    let digits_end = |mut i: usize| {
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'_') {
            i += 1;
        }
        i
    };
    if b[start] == b'0' && matches!(b.get(start + 1), Some(b'x' | b'o' | b'b')) {
        let end = ident_end(src, start);
        return Err(ParseError::new(
            start..end,
            format!(
                "`{}`: only decimal number literals are supported",
                &src[start..end]
            ),
        ));
    }
    let mut i = digits_end(start);
    let mut float = false;
    if b.get(i) == Some(&b'.') {
        let next = src[i + 1..].chars().next();
        if !matches!(next, Some(c) if c == '.' || is_ident_start(c)) {
            float = true;
            i = digits_end(i + 1);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let end = digits_end(j);
        if src[j..end].bytes().any(|c| c.is_ascii_digit()) {
            float = true;
            i = end;
        }
    }
    let num_end = i;
    let end = ident_end(src, num_end);
    let suffix = &src[num_end..end];
    let digits = &src[start..num_end];
    let bad = |message: String| Err(ParseError::new(start..end, message));
    match suffix {
        "" | "f64" => {}
        "f32" => {
            return bad(
                "`f32` literals are not supported: the expression is evaluated in f64".into(),
            )
        }
        s if INT_SUFFIXES.contains(&s) => {
            if float {
                return bad(format!("integer suffix `{s}` on a float literal"));
            }
        }
        s => {
            let hint = match s.chars().next() {
                Some(c) if is_ident_start(c) => {
                    format!(": implicit multiplication is not Rust, write `{digits} * {s}`")
                }
                _ => String::new(),
            };
            return bad(format!(
                "invalid suffix `{s}` on the number `{digits}`{hint}"
            ));
        }
    }
    let text: String = digits.chars().filter(|&c| c != '_').collect();
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok((Tok::Num(v), end)),
        Ok(_) => bad(format!("the number `{digits}` is too large for f64")),
        Err(_) => bad(format!("invalid number literal `{}`", &src[start..end])),
    }
}

// ---------------------------------------------------------------------------
// Parser

/// Nesting deeper than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 128;

const XOR_MESSAGE: &str =
    "`^` is XOR in Rust, not a power: use `u.powi(n)` for an integer power or `u.powf(p)`";

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    open_parens: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, k: usize) -> Option<&Token> {
        self.toks.get(self.pos + k)
    }

    fn is_punct(&self, k: usize, p: &str) -> bool {
        matches!(self.peek_at(k), Some(Token { tok: Tok::Punct(q), .. }) if *q == p)
    }

    fn bump(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        self.pos += 1;
        t
    }

    fn text(&self, r: SrcRange) -> &str {
        &self.src[r.start..r.end]
    }

    fn err<T>(&self, range: SrcRange, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError::new(range, message))
    }

    /// Precedence climbing over `+ -` (1) and `* /` (2), left associative.
    fn expr(&mut self, min_prec: u8) -> Result<Ast, ParseError> {
        let mut lhs = self.unary()?;
        loop {
            let (op, prec) = match self.peek().map(|t| &t.tok) {
                Some(Tok::Punct("+")) => (BinOp::Add, 1),
                Some(Tok::Punct("-")) => (BinOp::Sub, 1),
                Some(Tok::Punct("*")) => (BinOp::Mul, 2),
                Some(Tok::Punct("/")) => (BinOp::Div, 2),
                _ => match self.reject_infix() {
                    Some(e) => return Err(e),
                    None => break,
                },
            };
            if prec < min_prec {
                break;
            }
            let op_tok = self.bump();
            if op == BinOp::Mul && self.is_punct(0, "*") {
                let second = self.toks[self.pos].range;
                return self.err(
                    op_tok.range.to(second),
                    "`**` is not a power operator in Rust: use `u.powi(n)` for an integer power or `u.powf(p)`",
                );
            }
            let rhs = self.expr(prec + 1)?;
            let range = lhs.range.to(rhs.range);
            lhs = Ast {
                kind: AstKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                range,
            };
        }
        Ok(lhs)
    }

    /// The error for a token that cannot follow a complete operand, when it is an
    /// operator or construct we know and can name.
    fn reject_infix(&self) -> Option<ParseError> {
        let t = self.peek()?;
        let text = self.text(t.range);
        let mut range = t.range;
        let message = match &t.tok {
            Tok::Punct("^") => XOR_MESSAGE.to_string(),
            Tok::Punct("%") => "`%` (remainder) is not supported".to_string(),
            Tok::Punct("==" | "!=" | "<" | ">" | "<=" | ">=") => format!(
                "comparison `{text}` is not supported: a coefficient is a single f64 expression"
            ),
            Tok::Punct("&&" | "||") => format!("boolean operator `{text}` is not supported"),
            Tok::Punct("&" | "|" | "<<" | ">>") => {
                format!("bitwise operator `{text}` is not supported")
            }
            Tok::Punct("=" | "+=" | "-=" | "*=" | "/=" | "%=" | "^=") => {
                format!("assignment `{text}` is not supported in an expression")
            }
            Tok::Punct(".." | "..=") => "ranges are not supported".to_string(),
            Tok::Punct("?") => "the `?` operator is not supported".to_string(),
            Tok::Punct("(") => {
                "expected an operator before `(`: implicit multiplication is not Rust, write `*`"
                    .to_string()
            }
            Tok::Punct("[") => "indexing is not supported".to_string(),
            Tok::Punct("{") => "blocks are not supported".to_string(),
            Tok::Punct(";") => "unexpected `;`: write a single expression without `;`".to_string(),
            Tok::Punct("!") => "`!` is not supported here".to_string(),
            Tok::Ident(a) if a == "as" => {
                if let Some(Token {
                    tok: Tok::Ident(_),
                    range: ty,
                }) = self.peek_at(1)
                {
                    range = range.to(*ty);
                }
                "`as` casts are not supported: every value is already an f64".to_string()
            }
            _ => return None,
        };
        Some(ParseError::new(range, message))
    }

    /// The error for a token left over after a complete expression.
    fn trailing(&self, t: &Token) -> ParseError {
        if let Some(e) = self.reject_infix() {
            return e;
        }
        let text = self.text(t.range);
        let message = match &t.tok {
            Tok::Punct(")") => "unmatched `)`".to_string(),
            Tok::Punct(",") => "unexpected `,` after the expression".to_string(),
            _ => format!("expected an operator or the end of the expression, found `{text}`"),
        };
        ParseError::new(t.range, message)
    }

    /// The error where an operand was expected.
    fn expected_operand(&self) -> ParseError {
        match self.peek() {
            None => {
                let prev = self.toks[self.pos - 1].range;
                let text = self.text(prev);
                ParseError::new(prev, format!("expected an expression after `{text}`"))
            }
            Some(t) if t.tok == Tok::Punct(")") && self.open_parens == 0 => {
                ParseError::new(t.range, "unmatched `)`")
            }
            Some(t) => {
                let text = self.text(t.range);
                ParseError::new(t.range, format!("expected an expression, found `{text}`"))
            }
        }
    }

    fn unary(&mut self) -> Result<Ast, ParseError> {
        self.depth += 1;
        let r = if self.depth > MAX_DEPTH {
            let range = self.peek().map_or(SrcRange::default(), |t| t.range);
            self.err(range, "expression nested too deeply")
        } else {
            self.unary_inner()
        };
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> Result<Ast, ParseError> {
        let Some(t) = self.peek().cloned() else {
            return Err(self.expected_operand());
        };
        let message = match t.tok {
            Tok::Punct("-") => {
                self.bump();
                let operand = self.unary()?;
                let range = t.range.to(operand.range);
                return Ok(Ast {
                    kind: AstKind::Neg(Box::new(operand)),
                    range,
                });
            }
            Tok::Punct("+") => "unary `+` is not Rust: remove it",
            Tok::Punct("!") => "`!` (not) is not supported",
            Tok::Punct("*") => "dereference `*` is not supported",
            Tok::Punct("&" | "&&") => "references are not supported",
            Tok::Punct("|" | "||") => "closures are not supported",
            _ => {
                let p = self.primary()?;
                return self.postfix(p);
            }
        };
        self.err(t.range, message)
    }

    fn primary(&mut self) -> Result<Ast, ParseError> {
        let Some(t) = self.peek().cloned() else {
            return Err(self.expected_operand());
        };
        match &t.tok {
            Tok::Num(v) => {
                self.bump();
                Ok(Ast {
                    kind: AstKind::Num(*v),
                    range: t.range,
                })
            }
            Tok::Ident(_) | Tok::Punct("::") => self.name(),
            Tok::Punct("(") => self.paren(),
            Tok::Punct(".") => match self.peek_at(1) {
                Some(Token {
                    tok: Tok::Num(_),
                    range,
                }) if range.start == t.range.end => {
                    let digits = self.text(*range);
                    self.err(
                        t.range.to(*range),
                        format!("`.{digits}` is not a Rust literal: write `0.{digits}`"),
                    )
                }
                _ => Err(self.expected_operand()),
            },
            Tok::Punct("{") => self.err(t.range, "blocks are not supported"),
            Tok::Punct("[") => self.err(t.range, "arrays are not supported"),
            _ => Err(self.expected_operand()),
        }
    }

    fn paren(&mut self) -> Result<Ast, ParseError> {
        let open = self.bump().range;
        if self.is_punct(0, ")") {
            let close = self.bump().range;
            return self.err(open.to(close), "empty parentheses `()` are not a value");
        }
        if self.peek().is_none() {
            return self.err(open, "unclosed `(`");
        }
        self.open_parens += 1;
        let inner = self.expr(0)?;
        self.open_parens -= 1;
        match self.peek().cloned() {
            Some(Token {
                tok: Tok::Punct(")"),
                range: close,
            }) => {
                self.bump();
                Ok(Ast {
                    kind: AstKind::Paren(Box::new(inner)),
                    range: open.to(close),
                })
            }
            Some(Token {
                tok: Tok::Punct(","),
                range,
            }) => self.err(range, "tuples are not supported"),
            None => self.err(open, "unclosed `(`"),
            Some(t) => {
                let text = self.text(t.range);
                self.err(
                    t.range,
                    format!("expected an operator or `)`, found `{text}`"),
                )
            }
        }
    }

    /// An identifier, a path, or a call of either.
    fn name(&mut self) -> Result<Ast, ParseError> {
        let start = self.peek().expect("name token").range;
        let leading = self.is_punct(0, "::");
        if leading {
            self.bump();
        }
        let mut segs: Vec<(String, SrcRange)> = Vec::new();
        loop {
            match self.peek().cloned() {
                Some(Token {
                    tok: Tok::Ident(s),
                    range,
                }) => {
                    self.bump();
                    segs.push((s, range));
                }
                Some(t) => {
                    let text = self.text(t.range);
                    return self.err(
                        t.range,
                        format!("expected a name after `::`, found `{text}`"),
                    );
                }
                None => {
                    return self.err(self.toks[self.pos - 1].range, "expected a name after `::`")
                }
            }
            if !self.is_punct(0, "::") {
                break;
            }
            let sep = self.bump().range;
            if self.is_punct(0, "<") {
                return self.err(sep, "generic arguments are not supported");
            }
        }
        let range = start.to(segs.last().expect("one segment").1);
        let calls = self.is_punct(0, "(");
        if !leading && segs.len() == 1 {
            let (name, _) = segs.pop().expect("one segment");
            if let Some(e) = keyword_error(&name) {
                return self.err(range, e);
            }
            if self.is_punct(0, "!") {
                return self.err(
                    range.to(self.toks[self.pos].range),
                    format!("macro calls like `{name}!` are not supported"),
                );
            }
            if calls {
                let (args, close) = self.args(&name)?;
                return Ok(Ast {
                    kind: AstKind::Call {
                        func: name,
                        func_range: range,
                        args,
                    },
                    range: range.to(close),
                });
            }
            return Ok(Ast {
                kind: AstKind::Ident(name),
                range,
            });
        }
        let names: Vec<&str> = segs.iter().map(|(s, _)| s.as_str()).collect();
        let path = format!("{}{}", if leading { "::" } else { "" }, names.join("::"));
        let rest = match names.as_slice() {
            ["std" | "core", rest @ ..] => rest,
            rest if !leading => rest,
            _ => &[][..],
        };
        match rest {
            ["f64", "consts", c] => {
                let c = match *c {
                    "PI" => Constant::Pi,
                    "E" => Constant::E,
                    _ => {
                        return self.err(
                            range,
                            format!("unsupported constant `{path}`: supported are `PI` and `E`"),
                        )
                    }
                };
                Ok(Ast {
                    kind: AstKind::Const(c),
                    range,
                })
            }
            ["f64", c @ ("INFINITY" | "NAN")] => Ok(Ast {
                kind: AstKind::Num(if *c == "NAN" { f64::NAN } else { f64::INFINITY }),
                range,
            }),
            ["f64", f] if names.len() == 2 && !leading => {
                let f = f.to_string();
                if !calls {
                    return self.err(
                        range,
                        format!("`{path}` is a function: call it as `{path}(u)` or `u.{f}()`"),
                    );
                }
                let (args, close) = self.args(&path)?;
                Ok(Ast {
                    kind: AstKind::Call {
                        func: f,
                        func_range: range,
                        args,
                    },
                    range: range.to(close),
                })
            }
            _ => self.err(
                range,
                format!(
                    "unsupported path `{path}`: only `f64::consts::PI`, `f64::consts::E` and `f64::NAME(..)` functions are supported"
                ),
            ),
        }
    }

    /// `(a, b, ...)` after a callee; returns the arguments and the range of `)`.
    fn args(&mut self, callee: &str) -> Result<(Vec<Ast>, SrcRange), ParseError> {
        let open = self.bump().range;
        self.open_parens += 1;
        let mut args = Vec::new();
        let close = loop {
            if self.is_punct(0, ")") {
                break self.bump().range;
            }
            if self.peek().is_none() {
                return self.err(open, format!("unclosed `(` of the call to `{callee}`"));
            }
            args.push(self.expr(0)?);
            match self.peek().cloned() {
                Some(Token {
                    tok: Tok::Punct(","),
                    ..
                }) => {
                    self.bump();
                }
                Some(Token {
                    tok: Tok::Punct(")"),
                    range,
                }) => {
                    self.bump();
                    break range;
                }
                None => return self.err(open, format!("unclosed `(` of the call to `{callee}`")),
                Some(t) => {
                    let text = self.text(t.range);
                    return self.err(
                        t.range,
                        format!(
                            "expected `,` or `)` in the arguments of `{callee}`, found `{text}`"
                        ),
                    );
                }
            }
        };
        self.open_parens -= 1;
        Ok((args, close))
    }

    /// Method calls, and the postfix forms we reject (fields, indexing).
    fn postfix(&mut self, mut e: Ast) -> Result<Ast, ParseError> {
        loop {
            if self.is_punct(0, "[") {
                return self.err(self.toks[self.pos].range, "indexing is not supported");
            }
            if !self.is_punct(0, ".") {
                return Ok(e);
            }
            let dot = self.bump().range;
            match self.peek().cloned() {
                Some(Token {
                    tok: Tok::Ident(m),
                    range,
                }) => {
                    self.bump();
                    if self.is_punct(0, "::") {
                        return self.err(
                            self.toks[self.pos].range,
                            "generic arguments are not supported",
                        );
                    }
                    if !self.is_punct(0, "(") {
                        return self.err(
                            dot.to(range),
                            format!("field access `.{m}` is not supported: methods are called as `.{m}()`"),
                        );
                    }
                    let (args, close) = self.args(&m)?;
                    let whole = e.range.to(close);
                    e = Ast {
                        kind: AstKind::MethodCall {
                            receiver: Box::new(e),
                            method: m,
                            method_range: range,
                            args,
                        },
                        range: whole,
                    };
                }
                Some(Token {
                    tok: Tok::Num(_),
                    range,
                }) => return self.err(dot.to(range), "tuple fields are not supported"),
                Some(t) => {
                    let text = self.text(t.range);
                    return self.err(
                        t.range,
                        format!("expected a method name after `.`, found `{text}`"),
                    );
                }
                None => return self.err(dot, "expected a method name after `.`"),
            }
        }
    }
}

fn keyword_error(name: &str) -> Option<String> {
    Some(match name {
        "true" | "false" => "booleans are not supported".to_string(),
        "if" | "else" | "match" => format!("conditionals (`{name}`) are not supported"),
        "loop" | "while" | "for" => format!("loops (`{name}`) are not supported"),
        "let" => "`let` is not allowed inside an expression".to_string(),
        "return" | "break" | "continue" | "yield" => {
            format!("control flow (`{name}`) is not supported")
        }
        "move" => "closures are not supported".to_string(),
        "unsafe" | "async" | "const" => "blocks are not supported".to_string(),
        "_" => "`_` is not a value".to_string(),
        "as" | "await" | "crate" | "dyn" | "enum" | "extern" | "fn" | "impl" | "in" | "mod"
        | "mut" | "pub" | "ref" | "self" | "Self" | "static" | "struct" | "super" | "trait"
        | "type" | "use" | "where" => format!("`{name}` is a Rust keyword, not a value"),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Lowering

/// The functions the language knows, each with its lowering.
#[derive(Clone, Copy, Debug)]
enum Builtin {
    /// A function of the expression core.
    F(Func),
    /// `u^(1/2)`
    Sqrt,
    /// `u^(1/3)`
    Cbrt,
    /// `u^-1`
    Recip,
    /// `2^u`
    Exp2,
    /// `exp(u) - 1`
    ExpM1,
    /// `ln(1 + u)`
    Ln1p,
    /// `ln(u)/ln(2)`
    Log2,
    /// `ln(u)/ln(10)`
    Log10,
    /// `ln(u)/ln(base)`
    Log,
    /// `u^n`, `n` an integer literal
    Powi,
    /// `u^p`
    Powf,
}

/// The function table, one line per name, in the order the error message lists them.
const BUILTINS: [(&str, Builtin); 25] = [
    ("exp", Builtin::F(Func::Exp)),
    ("exp2", Builtin::Exp2),
    ("exp_m1", Builtin::ExpM1),
    ("ln", Builtin::F(Func::Ln)),
    ("ln_1p", Builtin::Ln1p),
    ("log", Builtin::Log),
    ("log2", Builtin::Log2),
    ("log10", Builtin::Log10),
    ("sqrt", Builtin::Sqrt),
    ("cbrt", Builtin::Cbrt),
    ("recip", Builtin::Recip),
    ("powi", Builtin::Powi),
    ("powf", Builtin::Powf),
    ("sin", Builtin::F(Func::Sin)),
    ("cos", Builtin::F(Func::Cos)),
    ("tan", Builtin::F(Func::Tan)),
    ("sinh", Builtin::F(Func::Sinh)),
    ("cosh", Builtin::F(Func::Cosh)),
    ("tanh", Builtin::F(Func::Tanh)),
    ("asin", Builtin::F(Func::Asin)),
    ("acos", Builtin::F(Func::Acos)),
    ("atan", Builtin::F(Func::Atan)),
    ("asinh", Builtin::F(Func::Asinh)),
    ("acosh", Builtin::F(Func::Acosh)),
    ("atanh", Builtin::F(Func::Atanh)),
];

impl Builtin {
    fn lookup(name: &str) -> Option<Builtin> {
        BUILTINS.iter().find(|(n, _)| *n == name).map(|&(_, b)| b)
    }
    /// Number of operands, the receiver included.
    fn arity(self) -> usize {
        match self {
            Builtin::Log | Builtin::Powi | Builtin::Powf => 2,
            _ => 1,
        }
    }
    /// The name of the second operand, for messages.
    fn second(self) -> &'static str {
        match self {
            Builtin::Log => "base",
            Builtin::Powi => "n",
            _ => "p",
        }
    }
}

fn supported_list() -> String {
    let names: Vec<&str> = BUILTINS.iter().map(|(n, _)| *n).collect();
    names.join(", ")
}

fn lower(ast: &Ast, scope: &Scope, errors: &mut Vec<ParseError>) -> Option<Expr> {
    match &ast.kind {
        AstKind::Num(v) => Some(Expr::num(*v)),
        AstKind::Const(c) => Some(Expr::constant(*c)),
        AstKind::Ident(name) => resolve(name, ast.range, scope, errors),
        AstKind::Neg(inner) => match inner.kind {
            AstKind::Num(v) => Some(Expr::num(-v)),
            _ => lower(inner, scope, errors).map(|e| -e),
        },
        AstKind::Paren(inner) => lower(inner, scope, errors),
        AstKind::Binary { .. } => {
            // Walk the left spine iteratively: `a + b + ... + z` nests to the left,
            // as deep as it is long.
            let mut spine = Vec::new();
            let mut left = ast;
            while let AstKind::Binary { op, lhs, rhs } = &left.kind {
                spine.push((*op, &**rhs));
                left = lhs;
            }
            let mut acc = lower(left, scope, errors);
            for (op, rhs) in spine.into_iter().rev() {
                let r = lower(rhs, scope, errors);
                acc = match (acc, r) {
                    (Some(l), Some(r)) => Some(match op {
                        BinOp::Add => l + r,
                        BinOp::Sub => l - r,
                        BinOp::Mul => l * r,
                        BinOp::Div => l / r,
                    }),
                    _ => None,
                };
            }
            acc
        }
        AstKind::Call {
            func,
            func_range,
            args,
        } => {
            let operands: Vec<&Ast> = args.iter().collect();
            lower_call(
                func,
                *func_range,
                ast.range,
                &operands,
                false,
                scope,
                errors,
            )
        }
        AstKind::MethodCall {
            receiver,
            method,
            method_range,
            args,
        } => {
            let operands: Vec<&Ast> = std::iter::once(&**receiver).chain(args).collect();
            lower_call(
                method,
                *method_range,
                ast.range,
                &operands,
                true,
                scope,
                errors,
            )
        }
    }
}

fn resolve(
    name: &str,
    range: SrcRange,
    scope: &Scope,
    errors: &mut Vec<ParseError>,
) -> Option<Expr> {
    if let Some(e) = scope.get(name) {
        return Some(e.clone());
    }
    match name {
        "PI" => return Some(Expr::pi()),
        "E" => return Some(Expr::e()),
        _ => {}
    }
    let message = if Builtin::lookup(name).is_some() {
        format!("`{name}` is a function: call it as `{name}(u)` or `u.{name}()`")
    } else {
        let known: Vec<&str> = scope.names().chain(["PI", "E"]).collect();
        match suggest(name, &known) {
            Some(s) => format!("unknown name `{name}`; did you mean `{s}`?"),
            None => format!(
                "unknown name `{name}`; known names are {}",
                known.join(", ")
            ),
        }
    };
    errors.push(ParseError::new(range, message));
    None
}

/// The closest known name: equal but for case, or within an edit distance of a
/// third of the name's length (at least 1) and not a replacement of a whole name.
fn suggest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let len = name.chars().count();
    let max = len.max(3) / 3;
    let lower = name.to_lowercase();
    known
        .iter()
        .filter_map(|&k| {
            if k.to_lowercase() == lower {
                return Some((0, k));
            }
            let d = levenshtein(name, k);
            (d <= max && d < len && d < k.chars().count()).then_some((d, k))
        })
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The integer value of a literal exponent: `3`, `-2`, `(-2)`.
fn int_literal(ast: &Ast) -> Option<f64> {
    match &ast.kind {
        AstKind::Num(v) => Some(*v),
        AstKind::Neg(a) => int_literal(a).map(|v| -v),
        AstKind::Paren(a) => int_literal(a),
        _ => None,
    }
}

/// Lowers `name(operands)` (`method` says whether it was written `u.name(..)`).
///
/// `cbrt(u)` lowers to `u^(1/3)`, which (like every non-integer power) is taken for
/// `u >= 0`: for negative `u` Rust's `cbrt` is real while `u^(1/3)` is not.
fn lower_call(
    name: &str,
    name_range: SrcRange,
    range: SrcRange,
    operands: &[&Ast],
    method: bool,
    scope: &Scope,
    errors: &mut Vec<ParseError>,
) -> Option<Expr> {
    let Some(b) = Builtin::lookup(name) else {
        for a in operands {
            lower(a, scope, errors);
        }
        let message = if scope.contains(name) || name == "PI" || name == "E" {
            format!("`{name}` is a value, not a function")
        } else if name == "pow" {
            "unsupported function `pow`: use `u.powi(n)` for an integer power or `u.powf(p)`"
                .to_string()
        } else {
            format!(
                "unsupported function `{name}`: supported are {}",
                supported_list()
            )
        };
        errors.push(ParseError::new(name_range, message));
        return None;
    };
    let arity = b.arity();
    if operands.len() != arity {
        for a in operands {
            lower(a, scope, errors);
        }
        let message = if method {
            let found = operands.len() - 1;
            match arity {
                1 => format!("`{name}` takes no arguments: write `u.{name}()`, found {found}"),
                _ => format!(
                    "`{name}` takes 1 argument: write `u.{name}({})`, found {found}",
                    b.second()
                ),
            }
        } else {
            let found = operands.len();
            let hint = if name == "log" {
                "; for the natural logarithm use `ln`"
            } else {
                ""
            };
            match arity {
                1 => format!("`{name}` takes 1 argument: write `{name}(u)`, found {found}"),
                _ => format!(
                    "`{name}` takes 2 arguments: write `{name}(u, {})`, found {found}{hint}",
                    b.second()
                ),
            }
        };
        errors.push(ParseError::new(range, message));
        return None;
    }
    let u = lower(operands[0], scope, errors);
    if let Builtin::Powi = b {
        let n = match int_literal(operands[1]) {
            Some(n) if n.fract() == 0.0 && n.abs() <= f64::from(i32::MAX) => Some(n as i32),
            Some(n) if n.fract() == 0.0 => {
                errors.push(ParseError::new(
                    operands[1].range,
                    "the exponent of powi is out of the range of i32",
                ));
                None
            }
            _ => {
                lower(operands[1], scope, errors);
                errors.push(ParseError::new(
                    operands[1].range,
                    "powi takes an integer literal exponent; use powf",
                ));
                None
            }
        };
        return Some(Expr::powi(u?, n?));
    }
    let second = operands.get(1).map(|a| lower(a, scope, errors));
    let u = u?;
    Some(match b {
        Builtin::F(f) => Expr::func(f, u),
        Builtin::Sqrt => u.sqrt(),
        Builtin::Cbrt => Expr::powf(u, 1.0 / 3.0),
        Builtin::Recip => u.recip(),
        Builtin::Exp2 => Expr::pow(Expr::num(2.0), u),
        Builtin::ExpM1 => u.exp() - 1.0,
        Builtin::Ln1p => (1.0 + u).ln(),
        Builtin::Log2 => u.ln() / Expr::num(2.0).ln(),
        Builtin::Log10 => u.ln() / Expr::num(10.0).ln(),
        Builtin::Log => u.ln() / second??.ln(),
        Builtin::Powf => Expr::pow(u, second??),
        Builtin::Powi => unreachable!("handled above"),
    })
}
