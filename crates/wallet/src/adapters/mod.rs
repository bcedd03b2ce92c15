pub mod bookings;
pub mod http;
pub mod payment_client;
pub mod policy;
pub mod sql;
