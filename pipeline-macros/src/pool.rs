//! `pool!(Replica, 2)`: a resource pool, a unit type that `#[task(pool = Replica)]` names, with
//! its size and its registration. Its name in `pipeline.toml` is the type's in snake case.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Ident, LitInt, Token, Visibility};

use crate::ast;

struct PoolInput {
    attributes: Vec<Attribute>,
    vis: Visibility,
    name: Ident,
    size: usize,
}

pub fn expand(input: TokenStream) -> TokenStream {
    match parse.parse2(input) {
        Ok(pool) => write(&pool),
        Err(err) => err.to_compile_error(),
    }
}

fn parse(input: ParseStream) -> syn::Result<PoolInput> {
    let usage = "pool! takes the pool's type name and its size: `pool!(Replica, 2);`";
    let attributes = input.call(Attribute::parse_outer)?;
    let vis: Visibility = input.parse()?;
    let name: Ident = input
        .parse()
        .map_err(|err| syn::Error::new(err.span(), usage))?;
    let needs_size = |_| {
        syn::Error::new(
            name.span(),
            format!(
                "pool `{name}` needs its size, how many of its tasks run at once: \
                 `pool!({name}, 2);`"
            ),
        )
    };
    input.parse::<Token![,]>().map_err(needs_size)?;
    let lit: LitInt = input.parse().map_err(needs_size)?;
    let size = lit
        .base10_parse::<usize>()
        .ok()
        .filter(|size| *size > 0)
        .ok_or_else(|| {
            syn::Error::new(
                lit.span(),
                "a pool's size is a whole number of at least 1: how many of its tasks run at once",
            )
        })?;
    let _ = input.parse::<Option<Token![,]>>()?;
    if !input.is_empty() {
        return Err(input.error(usage));
    }
    Ok(PoolInput {
        attributes,
        vis,
        name,
        size,
    })
}

fn write(pool: &PoolInput) -> TokenStream {
    let PoolInput {
        attributes,
        vis,
        name,
        size,
    } = pool;
    let config_name = ast::snake_case(&name.to_string());
    let doc = if ast::doc_comment(attributes).is_empty() {
        let text = format!(
            "The pool `{config_name}`: at most {size} of its tasks run at once (`[pools] \
             {config_name} = N` in pipeline.toml changes that)."
        );
        quote!(#[doc = #text])
    } else {
        TokenStream::new()
    };
    // Two pools of one name in one crate define this macro twice, which rustc refuses.
    let marker = format_ident!("__pipeline_pool_named_{}", config_name, span = name.span());
    let unique_name = quote_spanned! {name.span()=>
        #[doc(hidden)]
        #[macro_export]
        macro_rules! #marker { () => {}; }
    };
    quote! {
        #(#attributes)*
        #doc
        #[derive(Clone, Copy, Debug)]
        #vis struct #name;

        #unique_name

        const _: () = {
            use ::pipeline_core::__private as __p;

            static __PIPELINE_POOL: __p::PoolDef = __p::PoolDef {
                name: #config_name,
                size: #size,
                module_path: ::core::module_path!(),
            };

            impl __p::PoolType for #name {
                const DEF: &'static __p::PoolDef = &__PIPELINE_POOL;
            }

            __p::inventory::submit! { __p::PoolRegistration(&__PIPELINE_POOL) }
        };
    }
}
