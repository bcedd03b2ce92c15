//! Shared by the end-to-end test binaries; each uses a part of it.
#![allow(dead_code)]

pub mod config;
pub mod gateway;
pub mod otlp;
pub mod scenarios;
