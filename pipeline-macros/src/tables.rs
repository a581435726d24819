//! `tables!`: the tables a pipeline reads and writes, one module per database, one unit type per
//! table (`warehouse::orders`), which `#[task(reads = [..], writes = [..])]` name. A database
//! marked `source` is only read here (a replica, a vendor's views): `tables!` declares its
//! tables written by no task, so a task that declares a write to one does not compile.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, Token, Visibility, braced};

/// One database of the declaration and its tables.
struct Database {
    attributes: Vec<Attribute>,
    vis: Visibility,
    source: bool,
    name: Ident,
    tables: Vec<(Vec<Attribute>, Ident)>,
}

pub fn expand(input: TokenStream) -> TokenStream {
    match parse.parse2(input) {
        Ok(databases) => databases.iter().map(write).collect(),
        Err(err) => err.to_compile_error(),
    }
}

const USAGE: &str = "tables! lists tables by database: `tables! { pub warehouse { orders, users } \
                     pub source replica { orders } }`";

fn parse(input: ParseStream) -> syn::Result<Vec<Database>> {
    let mut databases: Vec<Database> = Vec::new();
    while !input.is_empty() {
        let attributes = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let source = input.peek(Ident) && input.peek2(Ident) && {
            let word: Ident = input.fork().parse()?;
            word == "source"
        };
        if source {
            input.parse::<Ident>()?;
        }
        let name: Ident = input
            .parse()
            .map_err(|err| syn::Error::new(err.span(), USAGE))?;
        if let Some(before) = databases.iter().find(|db| db.name == name) {
            let mut err = syn::Error::new(
                name.span(),
                format!("database `{name}` is listed twice: list all its tables in one block"),
            );
            err.combine(syn::Error::new(before.name.span(), "first listed here"));
            return Err(err);
        }
        let body;
        braced!(body in input);
        let listed = Punctuated::<(Vec<Attribute>, Ident), Token![,]>::parse_terminated_with(
            &body,
            |table| Ok((table.call(Attribute::parse_outer)?, table.parse()?)),
        )?;
        let mut tables: Vec<(Vec<Attribute>, Ident)> = Vec::new();
        // By name: comparing idents one by one grows with the square of the tables.
        let mut seen = std::collections::HashSet::new();
        for (attributes, table) in listed {
            if !seen.insert(table.to_string()) {
                return Err(syn::Error::new(
                    table.span(),
                    format!("table `{name}.{table}` is listed twice"),
                ));
            }
            tables.push((attributes, table));
        }
        databases.push(Database {
            attributes,
            vis,
            source,
            name,
            tables,
        });
    }
    Ok(databases)
}

fn write(database: &Database) -> TokenStream {
    let Database {
        attributes,
        vis,
        source,
        name,
        tables,
    } = database;
    // A table is seen wherever its database is (a private database's tables are the crate's:
    // `pub` inside a private module would be unreachable).
    let public = matches!(vis, Visibility::Public(_));
    let tables = tables.iter().map(|(attributes, table)| {
        let table_vis = if public {
            quote_spanned!(table.span()=> pub)
        } else {
            quote_spanned!(table.span()=> pub(crate))
        };
        let full_name = format!("{name}.{table}");
        let doc = if crate::ast::doc_comment(attributes).is_empty() {
            let text = format!("The table `{full_name}`.");
            quote!(#[doc = #text])
        } else {
            TokenStream::new()
        };
        let written_by_none = if *source {
            // A task that declares a write to a source conflicts with this, at its token.
            quote_spanned! {table.span()=>
                impl ::pipeline_core::__private::TableWriter for #table {
                    const WRITER: ::core::option::Option<
                        ::pipeline_core::__private::TableWriterDef,
                    > = ::core::option::Option::None;
                }
            }
        } else {
            TokenStream::new()
        };
        // Items at the module's level and no more than needed: rustc checks every item, and a
        // database of thousands of tables made thousands of derived impls. A table is never a
        // value (only its type is named), so it has no `Debug` either.
        quote_spanned! {table.span()=>
            #doc
            #(#attributes)*
            #[allow(non_camel_case_types, missing_debug_implementations)]
            #table_vis struct #table;

            impl ::pipeline_core::__private::Table for #table {
                const DEF: &'static ::pipeline_core::__private::TableDef =
                    &::pipeline_core::__private::TableDef {
                        name: #full_name,
                        source: #source,
                    };
            }

            #written_by_none
        }
    });
    let doc = if !crate::ast::doc_comment(attributes).is_empty() {
        TokenStream::new()
    } else if *source {
        let text = format!("The tables of the database `{name}`, read here and written elsewhere.");
        quote!(#[doc = #text])
    } else {
        let text = format!("The tables of the database `{name}`.");
        quote!(#[doc = #text])
    };
    quote! {
        #doc
        #(#attributes)*
        #vis mod #name {
            #(#tables)*
        }
    }
}
