//! The tables the pipeline reads and writes, by database as `pipeline.toml` names it. The
//! compiler checks every task's `reads` and `writes` against them: a task that reads a table
//! requires its writer, a table has one writer, and the replica is only read. `daily lineage`
//! prints them with their writers and readers.

use pipeline_core::tables;

tables! {
    /// The production read replica: the shop's own database, only read here.
    pub source replica {
        users,
        restaurants,
        orders,
    }

    /// The warehouse the loads, models and reports live in.
    pub warehouse {
        /// Copied from the replica every night.
        users,
        /// Copied from the replica every night.
        restaurants,
        /// Copied from the replica by its largest id: only new rows.
        orders,
        /// Exchange rates of each day, from the rates API.
        currency_rates,
        /// Orders placed, from the shop's message bus, each exactly once.
        order_events,
        /// Messages from the bus that did not decode.
        order_events_dead_letters,
        /// Delivered orders with users, restaurants and amounts in EUR.
        order_model,
        /// Revenue in EUR per city and day.
        management_report,
        /// Orders per restaurant city and partition.
        orders_by_city,
    }
}
