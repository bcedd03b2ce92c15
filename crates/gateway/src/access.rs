//! Who may call what, and which paths are refused before that is decided.
//! Pure: a method and a path in, the access needed out.

use axum::http::Method;

/// Ordered from the least to the most demanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Anyone, without a token.
    Public,
    /// Any signed-in user.
    SignedIn,
    /// Admins only.
    Admin,
}

/// The access a request needs. Browsing the catalog (`/listings`, and its
/// aliases `/items` and `/seats`), signing in, the web UI (`/`, `/ui/…`,
/// the API docs page `/docs`),
/// the operational endpoints and the API and event contract documents are
/// public; changing the catalog, the screen registry (`/screens`),
/// `/admin/*` (dead letters) and the `/dashboard` are for admins;
/// everything else needs a signed-in user (services then decide what of it
/// is the caller's own).
pub fn required(method: &Method, path: &str) -> Access {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/health")
        || path == "/metrics"
        || path == "/openapi.json"
        || path == "/asyncapi.json"
        || under("/contracts")
        || path == "/"
        || under("/ui")
        || path == "/docs"
        || under("/auth")
    {
        return Access::Public;
    }
    if under("/listings") || under("/items") || under("/seats") {
        return if method == Method::GET || method == Method::HEAD {
            Access::Public
        } else {
            Access::Admin
        };
    }
    if under("/admin") || under("/screens") || under("/dashboard") {
        return Access::Admin;
    }
    Access::SignedIn
}

/// Refuses a raw request path that could mean another path once a server
/// or a proxy normalises it: dot segments (`/./`, `/../`, a trailing
/// `/..`), encoded slashes, dots or backslashes (`%2f`, `%2e`, `%5c`, in
/// either case) and backslashes. The access decision is taken on the path
/// as sent, so it must be the path every later hop sees.
pub fn check_path(path: &str) -> Result<(), String> {
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(format!(
            "the path {path:?} contains a '.' or '..' segment; send the path it stands for"
        ));
    }
    if path.contains('\\') {
        return Err(format!("the path {path:?} contains a backslash"));
    }
    let lower = path.to_ascii_lowercase();
    if let Some(encoded) = ["%2f", "%2e", "%5c"].iter().find(|e| lower.contains(*e)) {
        return Err(format!(
            "the path {path:?} contains an encoded slash, dot or backslash ({encoded}); send it unencoded"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsing_listings_is_public_but_changing_them_is_for_admins() {
        assert_eq!(required(&Method::GET, "/listings"), Access::Public);
        assert_eq!(
            required(&Method::GET, "/listings/abc/seats"),
            Access::Public
        );
        assert_eq!(required(&Method::POST, "/listings"), Access::Admin);
        assert_eq!(required(&Method::PATCH, "/listings/abc"), Access::Admin);
        assert_eq!(required(&Method::DELETE, "/listings/abc"), Access::Admin);
    }

    #[test]
    fn the_public_aliases_of_the_catalog_are_browsed_like_it() {
        for path in ["/items", "/items/abc", "/seats/abc"] {
            assert_eq!(required(&Method::GET, path), Access::Public, "{path}");
            assert_eq!(required(&Method::HEAD, path), Access::Public, "{path}");
            assert_eq!(required(&Method::POST, path), Access::Admin, "{path}");
        }
        assert_eq!(required(&Method::GET, "/myPages"), Access::SignedIn);
        assert_eq!(required(&Method::GET, "/myPages/abc"), Access::SignedIn);
        assert_eq!(required(&Method::GET, "/itemsx"), Access::SignedIn);
    }

    #[test]
    fn the_dashboard_is_for_admins() {
        assert_eq!(required(&Method::GET, "/dashboard"), Access::Admin);
        assert_eq!(required(&Method::GET, "/dashboard/stream"), Access::Admin);
        assert!(Access::Public < Access::SignedIn && Access::SignedIn < Access::Admin);
    }

    #[test]
    fn the_screen_registry_is_for_admins_even_to_read() {
        assert_eq!(required(&Method::GET, "/screens"), Access::Admin);
        assert_eq!(required(&Method::POST, "/screens"), Access::Admin);
        assert_eq!(required(&Method::GET, "/screens/abc"), Access::Admin);
        assert_eq!(required(&Method::GET, "/screensaver"), Access::SignedIn);
    }

    #[test]
    fn bookings_need_a_signed_in_user() {
        assert_eq!(required(&Method::POST, "/reservations"), Access::SignedIn);
        assert_eq!(
            required(&Method::GET, "/mypage/reservations"),
            Access::SignedIn
        );
        assert_eq!(required(&Method::GET, "/notifications"), Access::SignedIn);
    }

    #[test]
    fn a_prefix_only_matches_whole_segments() {
        assert_eq!(required(&Method::GET, "/listingsx"), Access::SignedIn);
        assert_eq!(required(&Method::GET, "/administrators"), Access::SignedIn);
        assert_eq!(
            required(&Method::GET, "/admin/payment-provider"),
            Access::Admin
        );
    }

    #[test]
    fn operational_and_sign_in_endpoints_are_public() {
        for path in [
            "/health/live",
            "/health/ready",
            "/metrics",
            "/openapi.json",
            "/asyncapi.json",
            "/contracts/events/boxoffice.reservation.placed.schema.json",
            "/",
            "/ui/app/main.js",
            "/docs",
            "/auth/token",
        ] {
            assert_eq!(required(&Method::GET, path), Access::Public, "{path}");
        }
    }

    #[test]
    fn paths_that_normalise_into_other_paths_are_refused() {
        for path in [
            "/listings/../admin/x",
            "/listings/./x",
            "/listings/..",
            "/listings/.",
            "/listings/%2e%2e/admin/x",
            "/listings/%2E%2E/admin/x",
            "/listings%2F..%2Fadmin",
            "/listings%2fadmin",
            "/listings%5cadmin",
            "/listings\\..\\admin",
        ] {
            assert!(check_path(path).is_err(), "{path}");
        }
    }

    #[test]
    fn ordinary_paths_pass() {
        for path in [
            "/",
            "/listings",
            "/listings/0196b5c3-1b2a-7000-8000-000000000000",
            "/reservations/abc/cancel",
            "/listings/a.b",
            "/listings/...",
            "/listings/caf%C3%A9",
        ] {
            assert_eq!(check_path(path), Ok(()), "{path}");
        }
    }
}
