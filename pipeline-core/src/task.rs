//! Tasks as `#[task]` declares them: the [`Task`] trait implemented by each generated type,
//! their [`Policy`], and the errors that no retry can fix ([`Fatal`], from `fatal`). The static definition
//! behind each task and the registry that collects them are internal (`def`).

pub(crate) mod acyclic;
pub(crate) mod backoff;
pub(crate) mod def;
pub(crate) mod lineage;
mod policy;

use std::future::Future;
use std::pin::Pin;

use crate::ctx::Ctx;

pub(crate) use def::{DefRef, TaskDef, registered};
pub use policy::{DEFAULT_RETRY_DELAY, Policy};

/// What running a task returns: a boxed, `Send` future borrowing the context.
pub type TaskFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// The generated entry point of a task: the context, and the key for members of a family.
pub(crate) type RunFn = for<'a> fn(&'a Ctx, Option<&'static str>) -> TaskFuture<'a>;

/// Implemented by the unit struct that `#[task]` generates for each task function
/// (`load_orders` -> `LoadOrders`). Other tasks name these types in `requires` and `after`,
/// which is how the compiler checks the graph.
pub trait Task: 'static {
    #[doc(hidden)]
    const DEF: DefRef;

    /// The task's name (the function's name unless `name = ".."` overrides it).
    fn name() -> &'static str
    where
        Self: Sized,
    {
        Self::DEF.def().name
    }
}
