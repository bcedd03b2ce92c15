pub mod catalog_client;
pub mod http;
pub mod policy;
pub mod sql;
