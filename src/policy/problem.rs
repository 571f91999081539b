//! One problem found in a policy file: (field path, message, hint). The caller attaches the
//! line and column from the YAML document. Shared by the file checks and the per-kind checks.

use std::time::Duration;

use super::signals::HttpOptions;

/// Largest response body a source may accept: it is held in memory while parsed.
const MAX_BODY_BYTES: u64 = 1 << 30;

pub(super) type Problem = (String, String, Option<String>);

pub(super) fn problem(field: impl Into<String>, message: impl Into<String>) -> Problem {
    (field.into(), message.into(), None)
}

/// Checks shared by the HTTP sources: `base` is the engine key's path, `field` its URL field.
pub(super) fn check_http(
    base: &str,
    field: &str,
    url: &str,
    http: &HttpOptions,
    out: &mut Vec<Problem>,
) {
    check_url(&format!("{base}.{field}"), url, out);
    let timeout = http.timeout;
    if timeout < Duration::from_millis(100) || timeout > Duration::from_secs(600) {
        out.push(problem(
            format!("{base}.http.timeout"),
            "must be from 100ms to 10m",
        ));
    }
    if http.max_body_bytes == 0 || http.max_body_bytes > MAX_BODY_BYTES {
        out.push(problem(
            format!("{base}.http.max_body_bytes"),
            format!("must be from 1 to {MAX_BODY_BYTES} (1 GiB)"),
        ));
    }
}

pub(super) fn check_url(field: &str, url: &str, out: &mut Vec<Problem>) {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            if !u.username().is_empty() || u.password().is_some() {
                out.push((
                    field.to_string(),
                    "credentials inside the URL are inline secrets".into(),
                    Some("use `http.auth` with `{ env: VAR }` or `{ file: /path }`".into()),
                ));
            }
        }
        _ => out.push((
            field.to_string(),
            format!("`{url}` is not an http(s) URL"),
            Some("e.g. `http://trino:8080`".into()),
        )),
    }
}
