//! What a failed expansion emits besides its errors: the struct and its `Default`,
//! so that code using the type reports the declaration's errors, not ten more.

use proc_macro2::TokenStream;
use quote::quote;

use sbdm_syntax::Decl;

/// The struct with its fields and a `Default` of zeros.
pub(crate) fn stub(decl: &Decl) -> TokenStream {
    let attrs = &decl.attrs;
    let vis = &decl.vis;
    let name = &decl.name;
    let fields: Vec<_> = decl.params.iter().map(|p| &p.name).collect();
    let body = if fields.is_empty() {
        quote!(;)
    } else {
        quote!({ #(pub #fields: f64,)* })
    };
    quote! {
        #(#attrs)*
        #[derive(Debug, Clone, Copy, PartialEq)]
        #vis struct #name #body
        impl ::core::default::Default for #name {
            fn default() -> Self {
                Self { #(#fields: 0.0,)* }
            }
        }
    }
}
