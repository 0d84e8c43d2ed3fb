//! The macro's IR: the declaration as the user wrote it, every expression kept as its
//! tokens so that errors can point back at them.

use proc_macro2::{Span, TokenStream};
use syn::{Attribute, Ident, Visibility};

/// One expression of the declaration: its tokens and the span of the whole.
pub(crate) struct ExprSrc {
    pub tokens: TokenStream,
    /// Span to use when the expression is empty or a message concerns all of it.
    pub span: Span,
}

/// A parameter `name: f64 = default`.
pub(crate) struct ParamDecl {
    pub name: Ident,
    pub default: Option<ExprSrc>,
}

/// A whole `sde! { ... }` declaration.
pub(crate) struct Decl {
    pub attrs: Vec<Attribute>,
    pub vis: Visibility,
    pub name: Ident,
    pub params: Vec<ParamDecl>,
    pub time: Option<(ExprSrc, ExprSrc)>,
    pub lets: Vec<(Ident, ExprSrc)>,
    pub drift: Option<ExprSrc>,
    pub diffusion: Option<ExprSrc>,
    pub mean: Option<ExprSrc>,
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
