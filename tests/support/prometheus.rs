//! The real Prometheus (tests/peers/prometheus.sh): point it at a daemon, query it; and the
//! metric names a rules file or dashboard uses.

use std::collections::BTreeSet;

/// Every `poolpilot_*` name in `text` (histogram series suffixes removed).
pub fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("poolpilot_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| b.ends_with("_seconds")))
            .unwrap_or(name);
        names.insert(base.to_string());
        rest = &tail[end..];
    }
    names
}

/// Makes the peer scrape `addr` (file service discovery, picked up within ~1 s) under the
/// label `test=<job>`; the target file is removed when the guard drops.
pub struct Target(std::path::PathBuf);

impl Target {
    pub fn scrape(sd_dir: &str, job: &str, addr: std::net::SocketAddr) -> Target {
        let path = std::path::Path::new(sd_dir).join(format!("{job}.json"));
        std::fs::write(
            &path,
            format!(r#"[{{"targets":["{addr}"],"labels":{{"test":"{job}"}}}}]"#),
        )
        .unwrap();
        Target(path)
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `GET /api/v1/query`: the result rows, or the error Prometheus gave.
pub async fn query(
    http: &reqwest::Client,
    prometheus: &str,
    promql: &str,
) -> Result<Vec<serde_json::Value>, String> {
    let response = http
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", promql)])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(body.to_string());
    }
    Ok(body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}
