//! Procedural macros of `pipeline`. Use them through `pipeline_core` (`pipeline_core::task`),
//! which re-exports them; the generated code refers to `::pipeline_core::__private` only.
//!
//! Each macro runs in three phases, each in its own module: [`attr`] parses the attribute's
//! keys, [`ast`] reads the function, [`valid`] checks what the parser cannot, and [`expand`]
//! writes the task type and its registration. Errors point at the user's own tokens.

mod ast;
mod attr;
mod duration;
mod expand;
mod pool;
mod schedule;
mod suggest;
mod tables;
mod valid;

use proc_macro::TokenStream;

/// Turns `async fn name(ctx: &Ctx) -> Result<()>` into a registered task.
///
/// See the documentation of `pipeline_core::task` for the keys.
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::task(args.into(), item.into(), expand::Kind::Task).into()
}

/// Turns `async fn name(ctx: &Ctx) -> Result<Check>` into a check of another task's outcome.
///
/// See the documentation of `pipeline_core::check` for the keys.
#[proc_macro_attribute]
pub fn check(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::task(args.into(), item.into(), expand::Kind::Check).into()
}

/// Declares a schedule: when which targets run, in which time zone, by when they must be done.
///
/// See the documentation of `pipeline_core::schedule!` for the keys.
#[proc_macro]
pub fn schedule(input: TokenStream) -> TokenStream {
    schedule::expand(input.into()).into()
}

/// A compile error on a target where tasks could not register: expanded once by the runtime, so
/// that the list of targets lives only beside the registration code that needs it.
#[doc(hidden)]
#[proc_macro]
pub fn __refuse_targets_without_constructors(_input: TokenStream) -> TokenStream {
    expand::refuse_targets_without_constructors().into()
}

/// Declares a resource pool: a type that `#[task(pool = ..)]` names, and how many of its tasks
/// run at once.
///
/// See the documentation of `pipeline_core::pool!`.
#[proc_macro]
pub fn pool(input: TokenStream) -> TokenStream {
    pool::expand(input.into()).into()
}

/// Declares the tables that tasks read and write, by database: `warehouse::orders` is a type
/// that `#[task(reads = [..], writes = [..])]` names.
///
/// See the documentation of `pipeline_core::tables!`.
#[proc_macro]
pub fn tables(input: TokenStream) -> TokenStream {
    tables::expand(input.into()).into()
}
