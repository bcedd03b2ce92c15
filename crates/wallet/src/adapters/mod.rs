pub mod bookings;
pub mod http;
pub mod payment_client;
#[cfg(test)]
mod points_tests;
pub mod policy;
pub mod sql;
