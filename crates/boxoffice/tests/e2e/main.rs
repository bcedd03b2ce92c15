//! End-to-end scenarios through the gateway only, each on its own platform
//! in a temporary data dir on a free port.

#[path = "../common/mod.rs"]
mod common;

mod api_document;
mod bad_input;
mod contention;
mod dashboard;
mod dead_letters;
mod edge;
mod gateway_routes;
mod grpc;
mod helpers;
mod identity;
mod paging;
mod payments;
mod private_data;
mod rate_limits;
mod rebuild;
mod restart;
mod s0_movie_tickets;
mod s1_movie_seats;
mod s2_musicals;
mod s3_bikes;
mod screens;
mod tokens;
