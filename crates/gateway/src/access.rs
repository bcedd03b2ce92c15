//! Who may call what. Pure: a method and a path in, the access needed out.

use axum::http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token.
    Public,
    /// Any signed-in user.
    SignedIn,
    /// Admins only.
    Admin,
}

/// The access a request needs. Browsing the catalog, signing in and the
/// operational endpoints are public; changing the catalog and the admin
/// views are for admins; everything else needs a signed-in user (services
/// then decide what of it is the caller's own).
pub fn required(method: &Method, path: &str) -> Access {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/health")
        || path == "/metrics"
        || path == "/openapi.json"
        || path == "/"
        || under("/auth")
    {
        return Access::Public;
    }
    if under("/listings") {
        return if method == Method::GET || method == Method::HEAD {
            Access::Public
        } else {
            Access::Admin
        };
    }
    if under("/admin") || under("/dashboard") {
        return Access::Admin;
    }
    Access::SignedIn
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
            "/",
            "/auth/token",
        ] {
            assert_eq!(required(&Method::GET, path), Access::Public, "{path}");
        }
    }
}
