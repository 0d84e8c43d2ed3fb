//! Declarations given as source text at run time (a `.sde` file, a checkpoint's stored
//! declaration): the same parser and messages as the macro, positions as line and column.

use std::fmt;
use std::str::FromStr;

use proc_macro2::{Span, TokenStream};
use sbdm_symbolic::sde::Derived;

use crate::Decl;

/// One problem in declaration source text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceError {
    /// 1-based line of the first offending token (0 when the problem has no position,
    /// e.g. the text ends too early).
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// One line saying what is wrong (the macro's message).
    pub message: String,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        }
    }
}

/// Every problem found in a declaration's source text (at least one), in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceErrors(pub Vec<SourceError>);

impl fmt::Display for SourceErrors {
    /// `LINE:COL: message`, the problems separated by `; `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SourceErrors {}

fn at(span: Span, message: String) -> SourceError {
    let start = span.start();
    SourceError {
        line: start.line,
        column: if start.line == 0 { 0 } else { start.column + 1 },
        message,
    }
}

impl From<syn::Error> for SourceErrors {
    /// Every message of `e`, in the order of their positions in the text.
    fn from(e: syn::Error) -> Self {
        let mut all: Vec<SourceError> =
            e.into_iter().map(|e| at(e.span(), e.to_string())).collect();
        all.sort_by_key(|e| (e.line, e.column));
        SourceErrors(all)
    }
}

/// Parses and derives a declaration given as source text: exactly what goes between
/// the braces of `sde! { .. }` (doc comment, `struct Name { .. }`).
///
/// ```
/// let text = "/// Brownian motion.\nstruct Bm {\n    time = [1e-3, 1.0];\n    mean = 1.0;\n    std = t.sqrt();\n}";
/// let derived = sbdm_syntax::derive_source(text).unwrap();
/// assert_eq!(derived.name, "Bm");
///
/// let bad = "struct Bm {\n    time = [1e-3, 1.0];\n    mean = 1.0;\n    std = t.sqrt() +;\n}";
/// let err = sbdm_syntax::derive_source(bad).unwrap_err();
/// assert_eq!(err.0[0].line, 4);
/// ```
pub fn derive_source(text: &str) -> Result<Derived, SourceErrors> {
    let tokens = TokenStream::from_str(text).map_err(|e| {
        SourceErrors(vec![at(
            e.span(),
            format!("not valid declaration syntax: {e}"),
        )])
    })?;
    Ok(Decl::parse(tokens)?.derive()?)
}
