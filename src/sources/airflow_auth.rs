//! Airflow 3 API tokens (engine-apis.md §2.1): `POST /auth/token` with the policy's Basic
//! credentials returns `{"access_token": "<jwt>"}`. The token is cached until shortly before the
//! JWT's `exp`, and dropped when the API answers 401. Without credentials, `GET /auth/token`
//! (only served when `simple_auth_manager_all_admins` is on); a policy `bearer` token is used as is.

use base64::Engine as _;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::error::{ParseError, SourceError, parse_json};
use super::http::{Credentials, HttpClient, check_status, redact};
use super::secret;
use crate::policy::HttpAuth;
use crate::time::Timestamp;

/// Refresh this long before `exp`, so a token never expires between check and use.
const EXPIRY_MARGIN_MS: i64 = 30_000;

#[derive(Debug, Clone, PartialEq)]
pub struct CachedToken {
    pub token: String,
    /// From the JWT `exp` claim; `None` = opaque token, kept until a 401.
    pub expires_at: Option<Timestamp>,
}

impl CachedToken {
    pub fn is_fresh(&self, now: Timestamp) -> bool {
        self.expires_at
            .is_none_or(|exp| now.0 < exp.0 - EXPIRY_MARGIN_MS)
    }
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: Option<String>,
}

/// Parses the token endpoint's body.
pub fn parse_token(body: &[u8]) -> Result<CachedToken, ParseError> {
    let parsed: TokenBody = parse_json(body)?;
    let token = parsed
        .access_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ParseError("no `access_token` in the token answer".into()))?;
    Ok(CachedToken {
        expires_at: jwt_expiry(&token),
        token,
    })
}

/// The `exp` claim of a JWT (seconds since the epoch), without verifying the signature: the
/// client only needs to know when to ask again.
pub fn jwt_expiry(token: &str) -> Option<Timestamp> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    Some(Timestamp::from_secs_f64(exp))
}

/// Asks the API for a fresh token (never retried: POST).
pub async fn fetch_token(http: &HttpClient, api: &str) -> Result<CachedToken, SourceError> {
    let url = super::http::join(api, "/auth/token")?;
    let target = redact(&url);
    let body = match &http.options().auth {
        Some(HttpAuth::Bearer { token }) => {
            let token = secret::read(token, &target)?;
            return Ok(CachedToken {
                expires_at: jwt_expiry(&token),
                token,
            });
        }
        Some(HttpAuth::Basic { username, password }) => {
            let password = secret::read(password, &target)?;
            let json = serde_json::json!({ "username": username, "password": password });
            http.send(
                Method::POST,
                &url,
                HeaderMap::new(),
                Credentials::None,
                Some(&json),
            )
            .await?
        }
        None => {
            http.send(Method::GET, &url, HeaderMap::new(), Credentials::None, None)
                .await?
        }
    };
    token_answer(&url, body)
}

fn token_answer(url: &Url, body: super::http::Body) -> Result<CachedToken, SourceError> {
    let target = redact(url);
    if body.status == StatusCode::BAD_REQUEST {
        return Err(SourceError::Auth {
            target,
            detail: "token request refused (HTTP 400: empty username or password)".into(),
        });
    }
    let bytes = check_status(url, body)?;
    parse_token(&bytes).map_err(|e| e.at(&target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(claims: &str) -> String {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.sig",
            enc(r#"{"alg":"HS512","typ":"JWT"}"#),
            enc(claims)
        )
    }

    #[test]
    fn expiry_comes_from_the_exp_claim() {
        let token = jwt(r#"{"sub":"admin","exp":1795641600}"#);
        assert_eq!(
            jwt_expiry(&token),
            Some(Timestamp::from_secs(1_795_641_600))
        );
        assert_eq!(jwt_expiry("opaque-token"), None);
        assert_eq!(jwt_expiry(&jwt(r#"{"sub":"admin"}"#)), None);
    }

    #[test]
    fn freshness_keeps_a_safety_margin() {
        let t = CachedToken {
            token: "x".into(),
            expires_at: Some(Timestamp::from_secs(1000)),
        };
        assert!(t.is_fresh(Timestamp::from_secs(900)));
        assert!(!t.is_fresh(Timestamp::from_secs(980)));
        assert!(
            CachedToken {
                token: "x".into(),
                expires_at: None
            }
            .is_fresh(Timestamp::from_secs(1 << 40))
        );
    }

    #[test]
    fn token_body_parses_and_missing_token_is_malformed() {
        let token = jwt(r#"{"exp":2000}"#);
        let body = format!(r#"{{"access_token":"{token}","extra":1}}"#);
        let parsed = parse_token(body.as_bytes()).unwrap();
        assert_eq!(parsed.expires_at, Some(Timestamp::from_secs(2000)));
        assert!(parse_token(br#"{"detail":"x"}"#).is_err());
        assert!(parse_token(br#"{"access_token":""}"#).is_err());
    }
}
