//! The task function as the macro sees it. It keeps the original syntax so that errors found
//! later (`valid`) or by rustc (in the expansion) point at the user's tokens.

use proc_macro2::Span;
use syn::{Expr, ExprLit, FnArg, ItemFn, Lit, Meta, Type};

pub struct TaskFn<'a> {
    pub original: &'a ItemFn,
    /// The name of the task: the fn name, unless `name = ".."` overrides it.
    pub name: String,
    pub name_span: Span,
    /// The generated type: the fn name in UpperCamelCase.
    pub type_name: syn::Ident,
    /// The doc comment, lines joined with newlines, common indentation removed.
    pub description: String,
    /// The parameters, in order (receivers are rejected by `valid`).
    pub params: Vec<&'a Type>,
}

impl<'a> TaskFn<'a> {
    pub fn from_syn(original: &'a ItemFn, name_override: Option<&syn::LitStr>) -> Self {
        let ident = &original.sig.ident;
        let (name, name_span) = match name_override {
            Some(lit) => (lit.value(), lit.span()),
            None => (ident.to_string(), ident.span()),
        };
        let type_name = syn::Ident::new(&upper_camel_case(&ident.to_string()), ident.span());
        let params = original
            .sig
            .inputs
            .iter()
            .filter_map(|arg| match arg {
                FnArg::Typed(pat) => Some(&*pat.ty),
                FnArg::Receiver(_) => None,
            })
            .collect();
        TaskFn {
            original,
            name,
            name_span,
            type_name,
            description: doc_comment(&original.attrs),
            params,
        }
    }
}

/// `LoadOrders` -> `load_orders`.
pub fn snake_case(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// `load_orders` -> `LoadOrders`; `r#type` -> `Type`.
fn upper_camel_case(snake: &str) -> String {
    snake
        .trim_start_matches("r#")
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

/// The doc comment of an item, lines joined with newlines, common indentation removed.
pub fn doc_comment(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            Meta::NameValue(nv) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let indent = lines
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start().len())
        .min()
        .unwrap_or(0);
    let text: Vec<&str> = lines
        .iter()
        .map(|line| line.get(indent..).unwrap_or("").trim_end())
        .collect();
    text.join("\n").trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::upper_camel_case;

    #[test]
    fn camel_cases_fn_names() {
        assert_eq!(upper_camel_case("load_orders"), "LoadOrders");
        assert_eq!(upper_camel_case("make_order_model"), "MakeOrderModel");
        assert_eq!(upper_camel_case("load"), "Load");
        assert_eq!(upper_camel_case("_private__task"), "PrivateTask");
        assert_eq!(upper_camel_case("r#type"), "Type");
        assert_eq!(upper_camel_case("load_v2"), "LoadV2");
    }
}
