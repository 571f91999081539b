//! The HTTP edge shared by every REST source: one deadline for the whole exchange (connect,
//! headers and body, so a slow trickle is a timeout), a streamed size cap, credentials read
//! from their [`SecretRef`] per request, an optional extra CA, and retries only where safe
//! (GET, connection not established).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Client, Method, RequestBuilder, StatusCode, Url};

use super::error::SourceError;
use super::secret;
use crate::policy::{HttpAuth, HttpOptions};

/// Extra attempts for a GET whose connection could not be established.
const CONNECT_RETRIES: u32 = 2;
const RETRY_BACKOFF: Duration = Duration::from_millis(150);
const EXCERPT_CHARS: usize = 200;

/// A configured client. Construction never fails: a bad CA file is reported by every poll.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: Result<Client, String>,
    options: HttpOptions,
}

/// A response that arrived whole and within the cap (any status).
#[derive(Debug)]
pub struct Body {
    pub status: StatusCode,
    pub bytes: Vec<u8>,
}

/// Credentials for one request; `Options` uses the policy's `http.auth`.
#[derive(Debug, Clone, Copy)]
pub enum Credentials<'a> {
    None,
    Options,
    Bearer(&'a str),
}

impl HttpClient {
    pub fn new(options: &HttpOptions) -> HttpClient {
        HttpClient {
            client: shared_client(options),
            options: options.clone(),
        }
    }

    pub fn options(&self) -> &HttpOptions {
        &self.options
    }

    /// GET returning the body of a 2xx answer; 401/403 become `Auth`, other statuses `HttpStatus`.
    pub async fn get_ok(
        &self,
        url: &Url,
        headers: HeaderMap,
        creds: Credentials<'_>,
    ) -> Result<Vec<u8>, SourceError> {
        let body = self.send(Method::GET, url, headers, creds, None).await?;
        check_status(url, body)
    }

    /// Sends one request and reads the whole body under the deadline and the cap. Only GETs
    /// are retried, and only when the connection was never established.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        creds: Credentials<'_>,
        json: Option<&serde_json::Value>,
    ) -> Result<Body, SourceError> {
        let target = redact(url);
        let client = self
            .client
            .as_ref()
            .map_err(|detail| SourceError::Unreachable {
                target: target.clone(),
                detail: detail.clone(),
            })?;
        let mut request = client.request(method.clone(), url.clone()).headers(headers);
        request = self.authorize(request, creds, &target)?;
        if let Some(json) = json {
            request = request.json(json);
        }
        let timeout = self.options.timeout;
        let exchange = async {
            let mut attempt = 0;
            loop {
                let req = request
                    .try_clone()
                    .expect("bodies here are in memory, so always clonable");
                match req.send().await {
                    Ok(response) => {
                        return read_capped(
                            response,
                            self.options.max_body_bytes,
                            &target,
                            timeout,
                        )
                        .await;
                    }
                    Err(e)
                        if e.is_connect() && method == Method::GET && attempt < CONNECT_RETRIES =>
                    {
                        attempt += 1;
                        tokio::time::sleep(RETRY_BACKOFF * attempt).await;
                    }
                    Err(e) => return Err(classify(e, &target, timeout)),
                }
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(SourceError::Timeout {
                target,
                after: timeout,
            }))
    }

    fn authorize(
        &self,
        request: RequestBuilder,
        creds: Credentials<'_>,
        target: &str,
    ) -> Result<RequestBuilder, SourceError> {
        Ok(match creds {
            Credentials::None => request,
            Credentials::Bearer(token) => request.bearer_auth(token),
            Credentials::Options => match &self.options.auth {
                None => request,
                Some(HttpAuth::Basic { username, password }) => {
                    request.basic_auth(username, Some(secret::read(password, target)?))
                }
                Some(HttpAuth::Bearer { token }) => {
                    request.bearer_auth(secret::read(token, target)?)
                }
            },
        })
    }
}

/// Settings that make two clients differ: the timeout and the extra CA certificates (by
/// content, so a rotated CA file gets a new client at the next policy reload).
type ClientKey = (Duration, Option<Vec<u8>>);

/// A client for `options`, shared with every source of the same settings: each client carries
/// its own TLS root store and connection pool (~0.3 MiB), and a sidecar often polls one
/// coordinator for many pools.
fn shared_client(options: &HttpOptions) -> Result<Client, String> {
    static CLIENTS: OnceLock<Mutex<HashMap<ClientKey, Client>>> = OnceLock::new();
    let pem = match &options.ca_file {
        Some(path) => Some(
            std::fs::read(path)
                .map_err(|e| format!("cannot read CA file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let key = (options.timeout, pem);
    let mut clients = CLIENTS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(client) = clients.get(&key) {
        return Ok(client.clone());
    }
    let client = build_client(options, key.1.as_deref())?;
    clients.insert(key, client.clone());
    Ok(client)
}

fn build_client(options: &HttpOptions, ca_pem: Option<&[u8]>) -> Result<Client, String> {
    let mut builder = Client::builder()
        .connect_timeout(options.timeout)
        .timeout(options.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("poolpilot/", env!("CARGO_PKG_VERSION")));
    if let (Some(pem), Some(path)) = (ca_pem, &options.ca_file) {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("CA file {} is not PEM: {}", path.display(), chain(&e)))?;
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| format!("HTTP client setup failed: {}", chain(&e)))
}

/// Maps a status to the error kinds; 2xx passes the body through.
pub fn check_status(url: &Url, body: Body) -> Result<Vec<u8>, SourceError> {
    let target = redact(url);
    match body.status {
        s if s.is_success() => Ok(body.bytes),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(SourceError::Auth {
            target,
            detail: format!("HTTP {}", body.status.as_u16()),
        }),
        s => Err(SourceError::HttpStatus {
            target,
            status: s.as_u16(),
            body_excerpt: excerpt(&body.bytes),
        }),
    }
}

async fn read_capped(
    mut response: reqwest::Response,
    cap: u64,
    target: &str,
    timeout: Duration,
) -> Result<Body, SourceError> {
    let oversized = || SourceError::Oversized {
        target: target.to_string(),
        limit: cap,
    };
    if response.content_length().is_some_and(|len| len > cap) {
        return Err(oversized());
    }
    let status = response.status();
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| classify(e, target, timeout))?
    {
        if (bytes.len() + chunk.len()) as u64 > cap {
            return Err(oversized());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Body { status, bytes })
}

fn classify(e: reqwest::Error, target: &str, timeout: Duration) -> SourceError {
    if e.is_timeout() {
        return SourceError::Timeout {
            target: target.to_string(),
            after: timeout,
        };
    }
    SourceError::Unreachable {
        target: target.to_string(),
        detail: chain(&e.without_url()),
    }
}

/// An error and its causes on one line ("error sending request" alone says nothing).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The URL without userinfo, for messages.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let mut out: String = text.chars().take(EXCERPT_CHARS).collect();
    if text.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out.replace(['\n', '\r'], " ")
}

/// `base` + `path` (base may carry a path prefix such as `/airflow`).
pub fn join(base: &str, path: &str) -> Result<Url, SourceError> {
    let trimmed = base.trim_end_matches('/');
    Url::parse(&format!("{trimmed}{path}")).map_err(|e| SourceError::Unreachable {
        target: trimmed.to_string(),
        detail: format!("invalid URL: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_drops_userinfo() {
        let url = Url::parse("http://bob:hunter2@host:8080/v1/query").unwrap();
        let shown = redact(&url);
        assert_eq!(shown, "http://host:8080/v1/query");
    }

    #[test]
    fn join_keeps_a_base_path_prefix() {
        assert_eq!(
            join("http://h/airflow/", "/api/v2/pools").unwrap().as_str(),
            "http://h/airflow/api/v2/pools"
        );
        assert!(join("not a url", "/x").is_err());
    }

    #[test]
    fn statuses_map_to_kinds() {
        let url = Url::parse("http://h/x").unwrap();
        let body = |s: u16| Body {
            status: StatusCode::from_u16(s).unwrap(),
            bytes: b"oops\nmore".to_vec(),
        };
        assert!(check_status(&url, body(200)).is_ok());
        assert!(matches!(
            check_status(&url, body(401)),
            Err(SourceError::Auth { .. })
        ));
        assert!(matches!(
            check_status(&url, body(403)),
            Err(SourceError::Auth { .. })
        ));
        match check_status(&url, body(503)) {
            Err(SourceError::HttpStatus {
                status: 503,
                body_excerpt,
                ..
            }) => assert_eq!(body_excerpt, "oops more"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unreadable_ca_file_is_reported_by_requests_not_at_build() {
        let options = HttpOptions {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..HttpOptions::default()
        };
        let client = HttpClient::new(&options);
        assert!(
            client
                .client
                .as_ref()
                .unwrap_err()
                .contains("/nonexistent/ca.pem")
        );
    }
}
