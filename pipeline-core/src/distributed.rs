//! Distributed runs on PostgreSQL: `daily run --distributed` plans and decides as in one process,
//! but queues each attempt in the state store, where `daily worker` processes on any number of
//! hosts claim and run them. See [`worker`] for the worker's side and `Dispatch` for the run's.

mod dispatch;
pub mod worker;

pub(crate) use dispatch::Dispatch;
pub use worker::WorkerOptions;
