//! Secrets that must survive restarts but need not be configured: the admin
//! password and the token signing key. Given in configuration they are used
//! as they are; otherwise generated once and kept in the data dir (owner
//! read/write only).

use std::path::Path;

use anyhow::Context;

/// A secret and whether it was generated just now (so it can be shown once).
#[derive(Debug)]
pub struct Secret {
    pub value: String,
    pub generated: bool,
}

/// The configured value, else the one kept in `dir/name`, else a new random one.
pub fn resolve(configured: Option<&str>, dir: &Path, name: &str) -> anyhow::Result<Secret> {
    if let Some(value) = configured.filter(|v| !v.is_empty()) {
        return Ok(Secret {
            value: value.to_owned(),
            generated: false,
        });
    }
    let path = dir.join(name);
    if path.exists() {
        // Kept by an older version, perhaps with the default mode.
        runtime::store::keep_private(&path)?;
        let value = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_owned();
        if !value.is_empty() {
            return Ok(Secret {
                value,
                generated: false,
            });
        }
    }
    // Two v4 UUIDs: 244 random bits from the OS generator.
    let value = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_private(&path, &value)?;
    Ok(Secret {
        value,
        generated: true,
    })
}

fn write_private(path: &Path, value: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(value.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = resolve(None, dir.path(), "admin-password").unwrap();
        assert!(first.generated);
        assert_eq!(first.value.len(), 64);
        let again = resolve(None, dir.path(), "admin-password").unwrap();
        assert!(!again.generated);
        assert_eq!(again.value, first.value);
    }

    #[test]
    fn a_configured_secret_wins() {
        let dir = tempfile::tempdir().unwrap();
        let secret = resolve(Some("s3cret-admin"), dir.path(), "admin-password").unwrap();
        assert_eq!(secret.value, "s3cret-admin");
        assert!(!dir.path().join("admin-password").exists());
    }
}
