//! Reads a [`SecretRef`] at poll time (so rotated files and env are picked up). Errors name the
//! env var or file, never the value.

use crate::policy::SecretRef;

use super::error::SourceError;

/// The secret's value, trailing newline removed (files written by `echo` or Kubernetes secrets).
pub fn read(secret: &SecretRef, target: &str) -> Result<String, SourceError> {
    let auth = |detail: String| SourceError::Auth {
        target: target.to_string(),
        detail,
    };
    let value = match secret {
        SecretRef::Env(name) => std::env::var(name)
            .map_err(|_| auth(format!("secret env var `{name}` is not set or not UTF-8")))?,
        SecretRef::File(path) => std::fs::read_to_string(path).map_err(|e| {
            auth(format!(
                "cannot read secret file {}: {}",
                path.display(),
                e.kind()
            ))
        })?,
    };
    let value = value.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        return Err(auth(format!("secret {} is empty", describe(secret))));
    }
    Ok(value)
}

fn describe(secret: &SecretRef) -> String {
    match secret {
        SecretRef::Env(name) => format!("env var `{name}`"),
        SecretRef::File(path) => format!("file {}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SignalFault;

    #[test]
    fn file_secret_is_trimmed_and_missing_file_is_auth_without_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(read(&SecretRef::File(path.clone()), "t").unwrap(), "s3cret");
        let err = read(&SecretRef::File(dir.path().join("nope")), "t").unwrap_err();
        assert_eq!(err.fault(), SignalFault::Auth);
        assert!(err.to_string().contains("nope"));
    }

    #[test]
    fn unset_env_is_auth_and_names_the_variable() {
        let err = read(
            &SecretRef::Env("POOLPILOT_TEST_SURELY_UNSET_VAR".into()),
            "t",
        )
        .unwrap_err();
        assert_eq!(err.fault(), SignalFault::Auth);
        assert!(err.to_string().contains("POOLPILOT_TEST_SURELY_UNSET_VAR"));
    }

    #[test]
    fn empty_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "\n").unwrap();
        assert!(read(&SecretRef::File(path), "t").is_err());
    }
}
