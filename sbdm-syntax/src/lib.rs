//! The declaration syntax of sbdm's `sde!`, shared by the macro and the run time.
//!
//! A declaration — what goes between the braces of `sde! { .. }`, or the whole of a
//! `.sde` file — is parsed with syn into a [`Decl`] whose expressions keep their
//! tokens and text; [`Decl::spec`] is the symbolic core's [`SdeSpec`] and
//! [`Decl::error`] maps the core's [`Diagnostic`]s back to spans. The macro reports those spans as compile
//! errors under the tokens; [`derive_source`] reports them as line and column of the
//! source text. One parser, one set of messages, for both.

mod ast;
mod parse;
mod shift;
mod source;
mod tokens;

use proc_macro2::TokenStream;
use sbdm_symbolic::sde::{derive, Derived, Diagnostic, Param, Part, SdeSpec};

pub use ast::{Decl, ExprSrc, ParamDecl};
pub use shift::time_shifted;
pub use source::{derive_source, SourceError, SourceErrors};
pub use tokens::{error_between, SpanMap};

impl Decl {
    /// Parses a declaration's tokens. Unrecoverable syntax errors fail here; recoverable
    /// ones (duplicates, unknown items, empty expressions) are kept in
    /// [`Decl::syntax_errors`].
    pub fn parse(tokens: TokenStream) -> syn::Result<Decl> {
        syn::parse2(tokens)
    }

    /// The declaration as the symbolic core reads it (each expression as the text of
    /// its tokens).
    pub fn spec(&self) -> SdeSpec {
        let text = |e: &Option<ExprSrc>| e.as_ref().map(ExprSrc::text);
        SdeSpec {
            name: self.name.to_string(),
            doc: self.doc(),
            params: self
                .params
                .iter()
                .map(|p| Param {
                    name: p.name.to_string(),
                    default: text(&p.default),
                })
                .collect(),
            time: self.time.as_ref().map(|(a, b)| (a.text(), b.text())),
            lets: self
                .lets
                .iter()
                .map(|(n, e)| (n.to_string(), e.text()))
                .collect(),
            drift: text(&self.drift),
            diffusion: text(&self.diffusion),
            mean: text(&self.mean),
            std: text(&self.std),
        }
    }

    /// Checks and derives the declaration: every problem at once (the recoverable
    /// syntax errors, then the derivation's), each spanning its tokens.
    pub fn derive(&self) -> Result<Derived, syn::Error> {
        let spec = self.spec();
        let derived = std::panic::catch_unwind(|| derive(&spec)).unwrap_or_else(|_| {
            Err(vec![Diagnostic::new(
                Part::Decl,
                "internal error in the sde! derivation: please report this declaration",
            )])
        });
        let mut errors = self.syntax_errors.clone();
        let diags = match derived {
            Ok(d) => match errors {
                None => return Ok(d),
                Some(_) => Vec::new(),
            },
            Err(diags) => diags,
        };
        // A part left empty (`diffusion = ;`) already has its syntax error; what the
        // core says of it is a consequence.
        let has_syntax_errors = errors.is_some();
        for d in diags
            .iter()
            .filter(|d| !(has_syntax_errors && self.is_empty(d.part)))
        {
            let e = self.error(d);
            match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            }
        }
        Err(errors.unwrap_or_else(|| {
            syn::Error::new(self.name.span(), "the declaration does not derive")
        }))
    }

    /// Whether `part` is an expression written with nothing in it (`diffusion = ;`).
    fn is_empty(&self, part: Part) -> bool {
        self.expr(part).is_some_and(|e| e.tokens.is_empty())
    }

    /// The expression of `part`, if it is one and was written.
    fn expr(&self, part: Part) -> Option<&ExprSrc> {
        match part {
            Part::Decl | Part::ParamName(_) | Part::LetName(_) => None,
            Part::ParamDefault(i) => self.params.get(i).and_then(|p| p.default.as_ref()),
            Part::TimeStart => self.time.as_ref().map(|t| &t.0),
            Part::TimeEnd => self.time.as_ref().map(|t| &t.1),
            Part::Let(i) => self.lets.get(i).map(|l| &l.1),
            Part::Drift => self.drift.as_ref(),
            Part::Diffusion => self.diffusion.as_ref(),
            Part::Mean => self.mean.as_ref(),
            Part::Std => self.std.as_ref(),
        }
    }

    /// The core's diagnostic as an error spanning the tokens it points at.
    pub fn error(&self, diag: &Diagnostic) -> syn::Error {
        let name_span = self.name.span();
        match diag.part {
            Part::ParamName(i) => {
                let s = self.params.get(i).map_or(name_span, |p| p.name.span());
                return syn::Error::new(s, &diag.message);
            }
            Part::LetName(i) => {
                let s = self.lets.get(i).map_or(name_span, |l| l.0.span());
                return syn::Error::new(s, &diag.message);
            }
            _ => {}
        }
        let m = self.expr(diag.part).map(|e| &e.map);
        match m {
            None => syn::Error::new(name_span, &diag.message),
            Some(m) => {
                let (a, b) = match diag.range {
                    Some(r) => m.spans(r),
                    None => m.whole(),
                };
                error_between(a, b, &diag.message)
            }
        }
    }
}
