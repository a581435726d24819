//! The integration and end-to-end tests, one module a subject, in one binary: linked once, and
//! run side by side. Each test keeps to its own database, stream, directory and port.
//! `registry` (a duplicate task name on purpose) and `ui` (compile errors) stay apart.

mod access;
mod alerts_e2e;
mod api;
mod browser;
mod checks;
mod compile_pass;
mod container;
mod control_plane;
mod control_plane_e2e;
mod dag;
mod daily_e2e;
mod deployment;
mod distributed_e2e;
mod events;
mod events_e2e;
mod example_graph;
mod executor;
mod load;
mod logs_e2e;
mod metrics_e2e;
mod nats;
mod nats_production;
mod openlineage_e2e;
mod pools;
mod run_e2e;
mod schedule_e2e;
mod schedules;
mod secrets_e2e;
mod serve_e2e;
mod state_store;
