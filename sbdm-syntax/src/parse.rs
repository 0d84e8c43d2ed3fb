//! Parsing the declaration's syntax with syn. Expressions are not parsed here: their
//! tokens are kept and handed to the symbolic core's parser (see `tokens.rs`).

use proc_macro2::{TokenStream, TokenTree};
use syn::parse::{Parse, ParseStream};
use syn::{braced, bracketed, Ident, Token};

use crate::ast::{Decl, ExprSrc, ParamDecl};

const ITEMS: &str = "`params { .. }`, `time = [t_min, T];`, `let name = ..;`, `drift = ..;`, `diffusion = ..;`, `mean = ..;` or `std = ..;`";

/// Collects tokens up to (not including) a top-level `;`, consuming the `;`. A missing
/// `;` is fatal; an empty expression is recoverable: the (empty) expression comes back
/// with its error, parsing goes on after the `;` so later items are still checked, and
/// the item counts as declared (no "missing" error follows).
fn expr_until_semi(input: ParseStream, what: &Ident) -> syn::Result<(ExprSrc, Option<syn::Error>)> {
    let mut tokens = TokenStream::new();
    loop {
        if input.is_empty() {
            return Err(syn::Error::new(
                what.span(),
                format!("expected `;` after `{what} = ...`"),
            ));
        }
        if input.peek(Token![;]) {
            input.parse::<Token![;]>()?;
            break;
        }
        let tt: TokenTree = input.parse()?;
        tokens.extend([tt]);
    }
    let empty = tokens
        .is_empty()
        .then(|| syn::Error::new(what.span(), format!("`{what} =` needs an expression")));
    Ok((ExprSrc::new(tokens, what.span()), empty))
}

/// Splits a token stream at top-level commas.
fn split_commas(ts: TokenStream) -> Vec<TokenStream> {
    let mut out = vec![TokenStream::new()];
    for tt in ts {
        match &tt {
            TokenTree::Punct(p) if p.as_char() == ',' => out.push(TokenStream::new()),
            _ => out.last_mut().expect("non-empty").extend([tt]),
        }
    }
    if out.last().is_some_and(|t| t.is_empty()) {
        out.pop();
    }
    out
}

fn parse_params(input: ParseStream) -> syn::Result<Vec<ParamDecl>> {
    let content;
    braced!(content in input);
    let body: TokenStream = content.parse()?;
    let mut params = Vec::new();
    for chunk in split_commas(body) {
        let mut it = chunk.clone().into_iter().peekable();
        let name = match it.next() {
            Some(TokenTree::Ident(i)) => i,
            Some(other) => {
                return Err(syn::Error::new(
                    other.span(),
                    "expected a parameter `name: f64 = value`",
                ))
            }
            None => continue,
        };
        match it.next() {
            Some(TokenTree::Punct(p)) if p.as_char() == ':' => {}
            Some(other) => {
                return Err(syn::Error::new(
                    other.span(),
                    format!("expected `:` after parameter `{name}` (`{name}: f64 = value`)"),
                ))
            }
            None => {
                return Err(syn::Error::new(
                    name.span(),
                    format!("parameter `{name}` needs a type and default: `{name}: f64 = value`"),
                ))
            }
        }
        let mut ty = TokenStream::new();
        let mut default = None;
        for tt in it.by_ref() {
            if let TokenTree::Punct(p) = &tt {
                if p.as_char() == '=' {
                    let rest: TokenStream = it.by_ref().collect();
                    default = Some(ExprSrc::new(rest, p.span()));
                    break;
                }
            }
            ty.extend([tt]);
        }
        if ty.to_string() != "f64" {
            let ts = if ty.is_empty() {
                quote::quote!(#name)
            } else {
                ty
            };
            return Err(syn::Error::new_spanned(
                ts,
                format!("parameter `{name}` must have type `f64`"),
            ));
        }
        if let Some(d) = &default {
            if d.tokens.is_empty() {
                return Err(syn::Error::new(
                    d.span,
                    format!("parameter `{name}` needs a default value after `=`"),
                ));
            }
        }
        params.push(ParamDecl { name, default });
    }
    Ok(params)
}

fn parse_time(input: ParseStream, kw: &Ident) -> syn::Result<(ExprSrc, ExprSrc)> {
    let content;
    let bracket = bracketed!(content in input);
    let body: TokenStream = content.parse()?;
    input
        .parse::<Token![;]>()
        .map_err(|_| syn::Error::new(kw.span(), "expected `;` after `time = [t_min, T]`"))?;
    let parts = split_commas(body);
    if parts.len() != 2 {
        return Err(syn::Error::new(
            bracket.span.join(),
            format!(
                "invalid time range: expected two bounds `[t_min, T]`, found {}",
                parts.len()
            ),
        ));
    }
    let mut it = parts.into_iter();
    let lo = it.next().expect("two parts");
    let hi = it.next().expect("two parts");
    let span = bracket.span.join();
    Ok((ExprSrc::new(lo, span), ExprSrc::new(hi, span)))
}

impl Parse for Decl {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let attrs = input.call(syn::Attribute::parse_outer)?;
        let vis = input.parse()?;
        input.parse::<Token![struct]>()?;
        let name: Ident = input.parse()?;
        let body;
        braced!(body in input);
        let mut decl = Decl {
            attrs,
            vis,
            name,
            params: Vec::new(),
            time: None,
            lets: Vec::new(),
            drift: None,
            diffusion: None,
            mean: None,
            std: None,
            syntax_errors: None,
        };
        let mut errors: Option<syn::Error> = None;
        let mut push = |e: syn::Error| match &mut errors {
            Some(all) => all.combine(e),
            None => errors = Some(e),
        };
        let mut seen_params: Option<Ident> = None;
        while !body.is_empty() {
            if body.peek(Token![let]) {
                body.parse::<Token![let]>()?;
                let name: Ident = body.parse()?;
                body.parse::<Token![=]>()?;
                let (e, empty) = expr_until_semi(&body, &name)?;
                empty.into_iter().for_each(&mut push);
                decl.lets.push((name, e));
                continue;
            }
            let kw: Ident = body
                .parse()
                .map_err(|e| syn::Error::new(e.span(), format!("expected one of {ITEMS}")))?;
            let key = kw.to_string();
            if key == "params" {
                if seen_params.is_some() {
                    push(syn::Error::new(
                        kw.span(),
                        "duplicate `params { .. }`: declare all parameters in one block",
                    ));
                }
                seen_params = Some(kw.clone());
                decl.params.extend(parse_params(&body)?);
                continue;
            }
            if !matches!(
                key.as_str(),
                "time" | "drift" | "diffusion" | "mean" | "std"
            ) {
                // Skip to the next `;` so that later items are still checked.
                push(syn::Error::new(
                    kw.span(),
                    format!("unknown item `{kw}`: expected one of {ITEMS}"),
                ));
                while !body.is_empty() && !body.peek(Token![;]) {
                    body.parse::<TokenTree>()?;
                }
                if !body.is_empty() {
                    body.parse::<Token![;]>()?;
                }
                continue;
            }
            body.parse::<Token![=]>()
                .map_err(|e| syn::Error::new(e.span(), format!("expected `=` after `{kw}`")))?;
            let dup = |what: &str| {
                syn::Error::new(
                    kw.span(),
                    format!("duplicate `{what}`: it is already declared above"),
                )
            };
            match key.as_str() {
                "time" => {
                    if !body.peek(syn::token::Bracket) {
                        return Err(syn::Error::new(
                            kw.span(),
                            "invalid time range: write `time = [t_min, T];`",
                        ));
                    }
                    let t = parse_time(&body, &kw)?;
                    if decl.time.is_some() {
                        push(dup("time"));
                    }
                    decl.time = Some(t);
                }
                _ => {
                    let (e, empty) = expr_until_semi(&body, &kw)?;
                    empty.into_iter().for_each(&mut push);
                    let slot = match key.as_str() {
                        "drift" => &mut decl.drift,
                        "diffusion" => &mut decl.diffusion,
                        "mean" => &mut decl.mean,
                        _ => &mut decl.std,
                    };
                    if slot.is_some() {
                        push(dup(&key));
                    }
                    *slot = Some(e);
                }
            }
        }
        // Recoverable mistakes (duplicates, unknown items) are kept with the declaration so
        // that the derivation's own errors are reported in the same compile.
        decl.syntax_errors = errors;
        Ok(decl)
    }
}
