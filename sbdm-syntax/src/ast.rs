//! The declaration's IR: the declaration as the user wrote it, every expression kept as its
//! tokens so that errors can point back at them.

use proc_macro2::{Span, TokenStream};
use syn::{Attribute, Ident, Visibility};

use crate::tokens::SpanMap;

/// One expression of the declaration: its tokens and the span of the whole.
pub struct ExprSrc {
    /// The expression's tokens.
    pub tokens: TokenStream,
    /// Span to use when the expression is empty or a message concerns all of it.
    pub span: Span,
    /// The tokens as source text for the symbolic core, with the span of each byte range.
    pub map: SpanMap,
}

impl ExprSrc {
    /// The expression of `tokens` (`span` for messages about all of it).
    pub fn new(tokens: TokenStream, span: Span) -> ExprSrc {
        ExprSrc {
            map: SpanMap::new(&tokens, span),
            tokens,
            span,
        }
    }

    /// Its source text.
    pub fn text(&self) -> String {
        self.map.text.clone()
    }
}

/// A parameter `name: f64 = default`.
pub struct ParamDecl {
    /// The parameter's name.
    pub name: Ident,
    /// Its default value, if given.
    pub default: Option<ExprSrc>,
}

/// A whole `sde! { ... }` declaration.
pub struct Decl {
    /// Outer attributes (the doc comment).
    pub attrs: Vec<Attribute>,
    /// The struct's visibility.
    pub vis: Visibility,
    /// The struct's name.
    pub name: Ident,
    /// `params { .. }`, in order.
    pub params: Vec<ParamDecl>,
    /// `time = [t_min, T];`.
    pub time: Option<(ExprSrc, ExprSrc)>,
    /// `let name = ..;` bindings, in order.
    pub lets: Vec<(Ident, ExprSrc)>,
    /// `drift = ..;`.
    pub drift: Option<ExprSrc>,
    /// `diffusion = ..;`.
    pub diffusion: Option<ExprSrc>,
    /// `mean = ..;`.
    pub mean: Option<ExprSrc>,
    /// `std = ..;`.
    pub std: Option<ExprSrc>,
    /// Recoverable syntax errors found while parsing (reported with the derivation's).
    pub syntax_errors: Option<syn::Error>,
}

impl Decl {
    /// The doc comment lines, joined.
    pub fn doc(&self) -> Option<String> {
        let mut lines = Vec::new();
        for a in &self.attrs {
            if !a.path().is_ident("doc") {
                continue;
            }
            if let syn::Meta::NameValue(nv) = &a.meta {
                if let syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) = &nv.value
                {
                    lines.push(s.value().trim().to_string());
                }
            }
        }
        let doc = lines.join(" ").trim().to_string();
        (!doc.is_empty()).then_some(doc)
    }
}
