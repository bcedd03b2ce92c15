//! Distributed end-to-end tests: each service its own OS process, on a
//! real Kafka-protocol broker and PostgreSQL, traffic only through the
//! gateway. They need `BOXOFFICE_TEST_KAFKA` and `BOXOFFICE_TEST_POSTGRES`
//! (`.ci/run` starts both servers and sets them; docs/operations.md shows
//! how to do it by hand); without them each test says so and passes.

#[path = "../common/mod.rs"]
mod common;

mod deployment;
mod payments;
mod polyglot;
mod rolling;
mod scenarios;
mod traces;
