pub mod catalog_client;
pub mod grpc;
pub mod http;
pub mod payment_client;
pub mod policy;
#[cfg(test)]
mod saga_tests;
pub mod sql;
