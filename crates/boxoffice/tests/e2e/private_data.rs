//! What the platform keeps on disk (password hashes, signing key, bookings)
//! is readable by its owner only.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::helpers::spawn_app;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file in the data dir, with its mode.
fn files(dir: &Path) -> Vec<(String, u32)> {
    let mut found: Vec<(String, u32)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, mode(&path))
        })
        .collect();
    found.sort();
    found
}

fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "the data dir");
    let files = files(dir);
    for needed in ["identity.db", "bus.db", "catalog.db", "jwt-secret"] {
        assert!(
            files.iter().any(|(name, _)| name == needed),
            "{needed} in {files:?}"
        );
    }
    assert!(
        files.iter().any(|(name, _)| name.ends_with("-wal")),
        "WAL files too: {files:?}"
    );
    let shared: Vec<_> = files.iter().filter(|(_, mode)| *mode != 0o600).collect();
    assert!(shared.is_empty(), "files others can read: {shared:?}");
}

#[tokio::test]
async fn the_data_dir_and_every_file_in_it_are_private_to_their_owner() {
    let mut app = spawn_app().await;
    let admin = app.admin_token().await;
    let customer = app.customer("private").await;
    let movie = app.movie(&admin, "Private Lives", 10).await;
    assert_eq!(app.book(&customer, &movie, 1).await.status, 202);
    assert_private(app.dir.path());

    // A data dir left open by an older version is closed again at start.
    app.stop().await;
    std::fs::set_permissions(app.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, _) in files(app.dir.path()) {
        let path = app.dir.path().join(name);
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    app.restart().await;
    assert_eq!(app.get("/listings", None).await.status, 200);
    assert_private(app.dir.path());
}
