//! Checks that need both the attribute and the function. Every error is spanned on the token
//! the user has to change; all of them are reported together.

use syn::spanned::Spanned;
use syn::{Error, FnArg, ReturnType};

use crate::ast::TaskFn;
use crate::attr::TaskAttr;

const SIGNATURE: &str = "async fn name(ctx: &Ctx) -> Result<()>";
const CHECK_SIGNATURE: &str = "async fn name(ctx: &Ctx) -> Result<Check>";
const FAMILY_SIGNATURE: &str = "async fn name(ctx: &Ctx, key: &str) -> Result<()>";

pub fn validate(task: &TaskFn, attr: &TaskAttr) -> syn::Result<()> {
    let mut errors = Errors::default();
    let sig = &task.original.sig;
    let expected = if attr.check.is_some() {
        CHECK_SIGNATURE
    } else if attr.for_each.is_some() {
        FAMILY_SIGNATURE
    } else {
        SIGNATURE
    };

    if sig.asyncness.is_none() {
        let at = sig
            .constness
            .as_ref()
            .map(Spanned::span)
            .unwrap_or(sig.fn_token.span);
        errors.push(Error::new(
            at,
            format!("a task must be an async fn: `{expected}`"),
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(Error::new_spanned(
            constness,
            "a task cannot be a `const fn`",
        ));
    }
    if let Some(unsafety) = &sig.unsafety {
        errors.push(Error::new_spanned(
            unsafety,
            "a task cannot be an `unsafe fn`",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(Error::new_spanned(
            abi,
            "a task cannot have an `extern` ABI",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(Error::new_spanned(
            &sig.generics,
            "a task cannot be generic: each task is one node of the graph; \
             use `for_each` for one task per key",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(Error::new_spanned(variadic, "a task cannot be variadic"));
    }
    for arg in &sig.inputs {
        if let FnArg::Receiver(receiver) = arg {
            errors.push(Error::new_spanned(
                receiver,
                format!("a task is a free function, not a method: `{expected}`"),
            ));
        }
    }
    let wanted = if attr.for_each.is_some() { 2 } else { 1 };
    if sig.inputs.len() != wanted && !has_receiver(sig) {
        let hint = match (attr.for_each.is_some(), sig.inputs.len()) {
            (_, 0) => "a task takes the context as a parameter",
            (true, _) => "a task with `for_each` takes the context and its key",
            (false, 2) => "a second parameter needs `for_each = KEYS` on the attribute",
            (false, _) => "a task takes the context and nothing else",
        };
        // Point at the first parameter too many, or at the empty parentheses.
        let at = match sig.inputs.iter().nth(wanted.min(sig.inputs.len())) {
            Some(extra) if sig.inputs.len() > wanted => extra.span(),
            _ => sig.paren_token.span.join(),
        };
        errors.push(Error::new(at, format!("{hint}: `{expected}`")));
    }
    // The context is borrowed: `ctx: Ctx` or `ctx: &str` would otherwise fail deep inside the
    // generated code, where rustc suggests things that do not help.
    if let Some(FnArg::Typed(first)) = sig.inputs.first() {
        match &*first.ty {
            syn::Type::Reference(reference) if last_segment_is(&reference.elem, "Ctx") => {}
            syn::Type::Path(_) if last_segment_is(&first.ty, "Ctx") => {
                errors.push(Error::new_spanned(
                    &first.ty,
                    format!("a task borrows its context: `ctx: &Ctx`, as in `{expected}`"),
                ))
            }
            other => errors.push(Error::new_spanned(
                other,
                format!("a task's first parameter is its context, `ctx: &Ctx`: `{expected}`"),
            )),
        }
    }
    if let ReturnType::Type(_, output) = &sig.output {
        let wanted_ok = if attr.check.is_some() { "Check" } else { "()" };
        if let Some(ok) = result_ok_type(output)
            && quote::quote!(#ok).to_string().replace(' ', "") != wanted_ok
        {
            let what = if attr.check.is_some() {
                "a check returns `Result<Check>`"
            } else {
                "a task returns `Result<()>`: it writes what it makes to a database, and its \
                 value is only success or an error"
            };
            errors.push(Error::new_spanned(ok, format!("{what}: `{expected}`")));
        }
    }
    if let ReturnType::Default = sig.output {
        errors.push(Error::new(
            sig.paren_token.span.close(),
            format!(
                "a {} returns `{}`: `{expected}`",
                if attr.check.is_some() {
                    "check"
                } else {
                    "task"
                },
                if attr.check.is_some() {
                    "Result<Check>"
                } else {
                    "Result<()>"
                }
            ),
        ));
    }
    if task.name.is_empty() {
        errors.push(Error::new(task.name_span, "a task name cannot be empty"));
    }
    if let Some(bad) = task
        .name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "[]\"".contains(*c))
    {
        errors.push(Error::new(
            task.name_span,
            format!(
                "a task name cannot contain {bad:?}: names appear on the command line and in logs"
            ),
        ));
    }
    check_dependency_lists(attr, &mut errors);
    errors.finish()
}

fn has_receiver(sig: &syn::Signature) -> bool {
    sig.inputs
        .iter()
        .any(|arg| matches!(arg, FnArg::Receiver(_)))
}

/// A task listed twice, or both as `requires` and `after`, is a mistake worth stopping for.
fn check_dependency_lists(attr: &TaskAttr, errors: &mut Errors) {
    let mut seen: Vec<(String, &'static str)> = Vec::new();
    let lists = [("requires", &attr.requires), ("after", &attr.after)];
    for (key, paths) in lists {
        for path in paths {
            let text = quote::quote!(#path).to_string().replace(' ', "");
            if let Some((_, first)) = seen.iter().find(|(seen, _)| *seen == text) {
                let msg = if *first == key {
                    format!("`{text}` is listed twice in `{key}`")
                } else {
                    format!("`{text}` is listed in both `{first}` and `{key}`; keep one")
                };
                errors.push(Error::new_spanned(path, msg));
            } else {
                seen.push((text, key));
            }
        }
    }
}

/// Collects errors so that a user sees all of them at once.
#[derive(Default)]
struct Errors(Option<Error>);

impl Errors {
    fn push(&mut self, error: Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Whether a type is a path ending in `name` (`Ctx`, `pipeline_core::Ctx`).
fn last_segment_is(ty: &syn::Type, name: &str) -> bool {
    matches!(ty, syn::Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == name))
}

/// The success type of a `Result<T>` or `Result<T, E>` return type, if it is spelled so.
fn result_ok_type(ty: &syn::Type) -> Option<&syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(ok) => Some(ok),
        _ => None,
    }
}
