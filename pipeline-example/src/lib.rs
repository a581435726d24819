//! The `daily` pipeline: a nightly ETL modelled on a food-delivery company.
//!
//! - [`replica`]: copies `users`, `restaurants` and `orders` from the production read replica
//!   into the warehouse (one task per table, a task family).
//! - [`currency`]: exchange rates from an external API; low priority.
//! - [`model`]: the order model built on the loads, and the management report on top of it.

pub mod currency;
pub mod model;
pub mod replica;
