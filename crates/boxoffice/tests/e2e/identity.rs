//! Identity: the admin's password follows configuration across restarts.

use serde_json::json;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn a_new_admin_password_replaces_the_old_one_on_restart() {
    let mut app = spawn_app_with(|config| {
        config.admin_password = Some("first admin password".to_owned());
    })
    .await;
    app.token("admin", "first admin password").await;

    app.restart_with(|config| {
        config.admin_password = Some("second admin password".to_owned());
    })
    .await;
    app.token("admin", "second admin password").await;
    let old = app
        .post(
            "/auth/token",
            None,
            json!({"username": "admin", "password": "first admin password"}),
        )
        .await;
    assert_eq!(old.status, 401, "{old:?}");
    assert_eq!(old.content_type, "application/problem+json");

    // And the change is kept: a plain restart keeps the new password.
    app.restart().await;
    app.token("admin", "second admin password").await;
    app.stop().await;
}
