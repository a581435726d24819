//! The `daily` pipeline: a nightly ETL modelled on a food-delivery company.
//!
//! - [`replica`]: copies `users`, `restaurants` and `orders` from the production read replica
//!   into the warehouse (one task per table, a task family). Without a configured replica, a
//!   generated [`demo`] replica stands in.
//! - [`currency`]: exchange rates; low priority.
//! - [`events`]: orders placed, loaded from the shop's message bus (NATS JetStream), exactly
//!   once; low priority, and without a bus it says so.
//! - [`model`]: the order model built on the loads, the management report on top of it, and
//!   orders per city for each partition (hourly for the dashboard).
//! - [`schedules`]: when it runs: nightly in London, the report due by 06:00; the orders per
//!   city every hour.
//! - [`tables`]: what each task reads and writes, checked by the compiler.

pub mod currency;
pub mod demo;
pub mod events;
pub mod model;
pub mod replica;
pub mod schedules;
pub mod tables;
