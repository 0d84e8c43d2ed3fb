//! Expansion: declaration → `SdeSpec` → derivation in the symbolic core → code.

use proc_macro2::{Literal, Span, TokenStream};
use quote::quote;
use sbdm_symbolic::sde::{Derivation, Derived, Method, Plan, Recipe, SdeSpec};
use sbdm_symbolic::Expr;
use sbdm_syntax::Decl;

use crate::fallback;

/// The macro's one entry: never panics, errors become `compile_error!`s.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let decl = match Decl::parse(input) {
        Ok(d) => d,
        Err(e) => return e.into_compile_error(),
    };
    let decl = &decl;
    let generated = decl.derive().and_then(|d| generate(decl, &d, &decl.spec()));
    match generated {
        Ok(ts) => ts,
        Err(e) => {
            let mut out = e.into_compile_error();
            out.extend(fallback::stub(decl));
            out
        }
    }
}

/// An expression as Rust tokens (f64 arithmetic over `t`, `lambda` and the params).
fn rust(e: &Expr) -> syn::Result<TokenStream> {
    let src = e.to_rust(&|n| n.to_string());
    src.parse::<TokenStream>().map_err(|_| {
        syn::Error::new(
            Span::call_site(),
            format!("internal error: generated code does not parse: {src}"),
        )
    })
}

fn lit_str(s: &str) -> Literal {
    Literal::string(s)
}

fn derivation_tokens(d: &Derivation) -> TokenStream {
    let p = quote!(::sbdm::__private);
    let name = lit_str(&d.name);
    let doc = match &d.doc {
        Some(doc) => {
            let l = lit_str(doc);
            quote!(::core::option::Option::Some(#p::Cow::Borrowed(#l)))
        }
        None => quote!(::core::option::Option::None),
    };
    let header = d.header.iter().map(|h| lit_str(h));
    let entries = d.entries.iter().map(|e| {
        let key = lit_str(&e.key);
        let label = lit_str(&e.label);
        let text = lit_str(&e.text);
        let latex = lit_str(&e.latex);
        let method = match e.method {
            Method::Given => quote!(#p::Method::Given),
            Method::ClosedForm => quote!(#p::Method::ClosedForm),
            Method::Numeric => quote!(#p::Method::Numeric),
        };
        quote! {
            #p::Entry {
                key: #p::Cow::Borrowed(#key),
                label: #p::Cow::Borrowed(#label),
                text: #p::Cow::Borrowed(#text),
                latex: #p::Cow::Borrowed(#latex),
                method: #method,
            }
        }
    });
    quote! {
        #p::Derivation {
            name: #p::Cow::Borrowed(#name),
            doc: #doc,
            header: ::std::vec![#(#p::Cow::Borrowed(#header)),*],
            entries: ::std::vec![#(#entries),*],
        }
    }
}

fn generate(decl: &Decl, d: &Derived, spec: &SdeSpec) -> syn::Result<TokenStream> {
    let p = quote!(::sbdm::__private);
    let attrs = &decl.attrs;
    let vis = &decl.vis;
    let name = &decl.name;
    let name_str = lit_str(&name.to_string());
    let fields: Vec<_> = decl.params.iter().map(|p| p.name.clone()).collect();
    let field_docs: Vec<String> = d
        .params
        .iter()
        .map(|(n, v)| format!("Parameter `{n}` (default {v})."))
        .collect();
    let defaults: Vec<Literal> = d
        .params
        .iter()
        .map(|(_, v)| Literal::f64_suffixed(*v))
        .collect();
    let c = &d.coefs;
    // Every method binds the params by name, and the constants.
    let bind = quote! {
        #[allow(unused_variables)]
        let Self { #(#fields),* } = *self;
        #[allow(unused_imports)]
        use ::core::f64::consts::{E, PI};
    };
    let f = rust(&c.f)?;
    let g = rust(&c.g)?;
    let g2 = rust(&c.g2)?;
    let t_min = rust(&d.t_min)?;
    let t_max = rust(&d.t_max)?;
    // Each coefficient's plan: its closed form, or a call of the numeric recipe
    // (`sbdm_symbolic::sde::recipe`) over this SDE's own methods.
    let r = quote!(#p::recipe);
    let closed_or = |plan: Plan<'_>, numeric: TokenStream| match plan {
        Plan::Closed(e) => rust(e),
        Plan::Numeric(_) => Ok(numeric),
    };
    let drift = quote!(|s: f64| #p::Sde::drift_coef(self, s));
    let g2_of = quote!(|s: f64| #p::Sde::diffusion_sq(self, s));
    let mean_coef = closed_or(c.a_plan(), quote!(#r::mean_by_quadrature(#drift, t)))?;
    let variance = match c.b2_plan() {
        Plan::Closed(e) => rust(e)?,
        Plan::Numeric(Recipe::VarianceByQuadrature) => quote! {
            #r::variance_by_quadrature(|s: f64| #p::GaussianKernel::mean_coef(self, s), #g2_of, t)
        },
        Plan::Numeric(_) => quote!(#r::variance_by_kernel_ode(#drift, #g2_of, t)),
    };
    let std = closed_or(
        c.b_plan(),
        quote!(#r::std_from_variance(#p::GaussianKernel::variance(self, t))),
    )?;
    let log_snr = closed_or(
        c.log_snr_plan(),
        quote! {
            #r::log_snr_from_kernel(
                #p::GaussianKernel::mean_coef(self, t),
                #p::GaussianKernel::variance(self, t),
            )
        },
    )?;
    let dlog_snr = closed_or(
        c.dlog_snr_plan(),
        quote! {
            #r::dlog_snr_from_variance(
                #p::Sde::diffusion_sq(self, t),
                #p::GaussianKernel::variance(self, t),
            )
        },
    )?;
    let t_of = closed_or(
        c.t_of_log_snr_plan(),
        quote! {{
            let (lo, hi) = #p::Sde::time_range(self);
            #r::time_by_solve(|t: f64| #p::GaussianKernel::log_snr(self, t), lambda, lo, hi)
        }},
    )?;
    let mean_rate = closed_or(
        c.da_plan(),
        quote! {
            #r::mean_rate_from_drift(
                #p::Sde::drift_coef(self, t),
                #p::GaussianKernel::mean_coef(self, t),
            )
        },
    )?;
    let std_rate = closed_or(
        c.db_plan(),
        quote! {
            #r::std_rate_from_variance(
                #p::Sde::diffusion_sq(self, t),
                #p::Sde::drift_coef(self, t),
                #p::GaussianKernel::variance(self, t),
            )
        },
    )?;
    let derivation = derivation_tokens(&d.derivation);
    // A declaration without params is a unit struct.
    let body = if fields.is_empty() {
        quote!(;)
    } else {
        quote!({ #(#[doc = #field_docs] pub #fields: f64,)* })
    };
    let closed = d.derivation.is_closed_form();
    let source_text = lit_str(&spec.to_source());
    let param_names: Vec<Literal> = fields.iter().map(|f| lit_str(&f.to_string())).collect();
    Ok(quote! {
        #(#attrs)*
        #[derive(Debug, Clone, Copy, PartialEq)]
        #vis struct #name #body

        impl ::core::default::Default for #name {
            fn default() -> Self {
                Self { #(#fields: #defaults,)* }
            }
        }

        impl #name {
            /// Every derived equation of this SDE, printable as text (`Display`) and LaTeX.
            pub fn derivation() -> #p::Derivation {
                #derivation
            }
            /// Whether every coefficient was derived in closed form (no quadrature).
            pub const CLOSED_FORM: bool = #closed;
        }

        #[allow(unused_variables, clippy::all)]
        impl #p::Sde for #name {
            fn name(&self) -> &'static str {
                #name_str
            }
            fn source(&self) -> ::core::option::Option<#p::SdeSource> {
                #bind
                ::core::option::Option::Some(#p::SdeSource {
                    text: #p::Cow::Borrowed(#source_text),
                    params: ::std::vec![#((::std::string::String::from(#param_names), #fields)),*],
                })
            }
            fn time_range(&self) -> (f64, f64) {
                #bind
                (#t_min, #t_max)
            }
            fn drift_coef(&self, t: f64) -> f64 {
                #bind
                #f
            }
            fn diffusion(&self, t: f64) -> f64 {
                #bind
                #g
            }
            fn diffusion_sq(&self, t: f64) -> f64 {
                #bind
                #g2
            }
        }

        #[allow(unused_variables, clippy::all)]
        impl #p::GaussianKernel for #name {
            fn mean_coef(&self, t: f64) -> f64 {
                #bind
                #mean_coef
            }
            fn std(&self, t: f64) -> f64 {
                #bind
                #std
            }
            fn variance(&self, t: f64) -> f64 {
                #bind
                #variance
            }
            fn log_snr(&self, t: f64) -> f64 {
                #bind
                #log_snr
            }
            fn dlog_snr_dt(&self, t: f64) -> f64 {
                #bind
                #dlog_snr
            }
            fn t_of_log_snr(&self, lambda: f64) -> f64 {
                #bind
                #t_of
            }
            fn mean_coef_dt(&self, t: f64) -> f64 {
                #bind
                #mean_rate
            }
            fn std_dt(&self, t: f64) -> f64 {
                #bind
                #std_rate
            }
        }
    })
}
