//! Every integration test of the host in one crate, one link (`cargo test -p gadget-host --test
//! it`; one module: `-- daemon::`). Tests that need root are `#[ignore = "needs root"]`: the
//! Makefile runs them with `--include-ignored` (CI runs as root).

// Test code: its helpers (common/, fixtures builders) are not `#[test]` fns, which clippy.toml's
// allow-*-in-tests covers, yet a panic there is a failed test, as intended. They may also print what
// they skipped or measured.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

mod common;

mod archive_import;
mod authoring;
mod bad_input;
mod cluster;
mod connections;
mod container;
mod core_relo;
mod daemon;
mod fetch_budgets;
mod guest_limits;
mod high_iops;
mod hostile;
mod ig_image;
mod image;
mod kubectl;
mod kubectl_deploy;
mod memory_pressure;
mod metrics_export;
mod metrics_prometheus;
mod multinode;
mod object_model;
mod real_io;
mod signatures;
mod trace_exec;
mod tracer;
