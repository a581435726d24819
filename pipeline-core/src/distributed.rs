//! `daily worker`: the workers of distributed runs on PostgreSQL. `daily run --distributed`
//! plans and decides as in one process, but queues each attempt in the state store (the run's
//! side is `run::dispatch`), where workers on any number of hosts claim and run them. See
//! [`worker`].

pub(crate) mod listing;
mod runs;
pub mod worker;

pub use worker::WorkerOptions;
