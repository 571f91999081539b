//! Names that leave poolpilot: Kubernetes object names (the API server refuses anything else,
//! and only at the first scale, long after `validate` said yes) and names that become metric
//! labels (every distinct value is a series that lives as long as the process).

/// Longest pool name: it is a label on every pool metric and a key in the state file.
pub const MAX_POOL_NAME: usize = 63;

/// A DNS-1123 label (namespaces, Lease names): `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63.
pub fn dns_label(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err(format!(
            "`{}` must be 1 to 63 characters (a DNS-1123 label)",
            shorten(name)
        ));
    }
    let ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok || name.starts_with('-') || name.ends_with('-') {
        return Err(format!(
            "`{}` is not a DNS-1123 label: lower-case letters, digits and `-`, starting and \
             ending with a letter or digit",
            shorten(name)
        ));
    }
    Ok(())
}

/// A DNS-1123 subdomain (Deployment and StatefulSet names): labels joined by `.`, at most 253.
pub fn dns_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err(format!(
            "`{}` must be 1 to 253 characters (a DNS-1123 subdomain)",
            shorten(name)
        ));
    }
    if name.split('.').any(|label| dns_label(label).is_err()) {
        return Err(format!(
            "`{}` is not a DNS-1123 subdomain: lower-case letters, digits, `-` and `.`, each \
             part starting and ending with a letter or digit",
            shorten(name)
        ));
    }
    Ok(())
}

/// A pool name: 1 to [`MAX_POOL_NAME`] of letters, digits, `-`, `_`, `.`.
pub fn pool_name(name: &str) -> Result<(), String> {
    let charset = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if name.is_empty() || name.len() > MAX_POOL_NAME || !charset {
        return Err(format!(
            "must be 1 to {MAX_POOL_NAME} letters, digits, `-`, `_` or `.` (it becomes a \
             metric label)"
        ));
    }
    Ok(())
}

/// An environment variable name as a shell can set it: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn env_var(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') || name.len() > 255 {
        return Err(format!(
            "`{}` is not an environment variable name (letters, digits and `_`, not starting \
             with a digit)",
            shorten(name)
        ));
    }
    Ok(())
}

/// A name cut to something a message can show.
fn shorten(name: &str) -> String {
    match name.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &name[..cut]),
        None => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_names_follow_dns_1123() {
        for good in ["airflow", "a", "trino-workers-2", &"a".repeat(63)] {
            assert!(dns_label(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Not A Valid NS!",
            "-airflow",
            "airflow-",
            "Airflow",
            &"a".repeat(64),
        ] {
            assert!(dns_label(bad).is_err(), "{bad}");
        }
        assert!(dns_subdomain("spark.workers-1").is_ok());
        assert!(dns_subdomain("spark..workers").is_err());
        assert!(dns_subdomain("-airflow").is_err());
    }

    #[test]
    fn pool_names_are_short_metric_labels() {
        assert!(pool_name("trino-etl_2.eu").is_ok());
        assert!(pool_name(&"p".repeat(63)).is_ok());
        let long = "p".repeat(100_000);
        let why = pool_name(&long).unwrap_err();
        assert!(why.contains("63"), "{why}");
        assert!(pool_name("a b").is_err());
        assert!(pool_name("").is_err());
    }

    #[test]
    fn env_var_names_must_be_settable() {
        assert!(env_var("AIRFLOW_PASSWORD").is_ok());
        assert!(env_var("_X1").is_ok());
        for bad in ["", "1X", "A-B", "A B"] {
            assert!(env_var(bad).is_err(), "{bad:?}");
        }
    }
}
