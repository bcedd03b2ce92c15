//! The public API document of the whole platform: every service's part and
//! the gateway's, as [`gateway::api::document`] puts them together.
//!
//! It describes the product (the default route table, the wallet on), so
//! the document a gateway serves is the same whatever its deployment, and
//! the same as the committed `web/openapi.json`.

use utoipa::openapi::OpenApi;

use crate::config::{RouteConfig, ServiceUrls};
use crate::platform;

/// The document the gateway serves at `/openapi.json`.
pub fn document() -> OpenApi {
    let routes: Vec<gateway::Route> = RouteConfig::defaults()
        .into_iter()
        .map(|route| gateway::Route {
            upstream: format!("http://{}", route.service),
            prefix: route.prefix,
            service: route.service,
            rewrite: route.rewrite,
        })
        .collect();
    let keepers = platform::services(&ServiceUrls::default(), true);
    let keepers: Vec<&str> = keepers.keys().map(String::as_str).collect();
    gateway::api::document(
        vec![
            catalog::api(),
            reservation::api(),
            payment::api(),
            wallet::api(),
            notification::api(),
            mypage::api(),
            dashboard::api(),
        ],
        &routes,
        &keepers,
    )
    .expect("the services' parts make one document")
}

/// [`document`] as the gateway serves it and `web/openapi.json` holds it.
pub fn json() -> String {
    gateway::api::to_json(&document())
}
