//! Which daemon `status`, `pause` and `resume` talk to: `--url`, else the `listen` address of the
//! settings file given with `--config` (the daemon's own), else the settings' default listener
//! on this host.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use clap::Args;

use crate::settings::Settings;

#[derive(Debug, Args)]
pub struct DaemonUrl {
    /// Base URL of the daemon's listener; default: `listen` from `--config`, else
    /// http://127.0.0.1:9464.
    #[arg(long, env = "POOLPILOT_URL")]
    pub url: Option<String>,
    /// The daemon's settings file: its `listen` address is the default `--url` (a wildcard
    /// address such as 0.0.0.0 is reached on loopback).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl DaemonUrl {
    /// The base URL without a trailing `/`; an unreadable settings file is an error naming it.
    pub fn resolve(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.url {
            return Ok(url.trim_end_matches('/').to_string());
        }
        let listen = match &self.config {
            Some(path) => match Settings::load(Some(path)) {
                Ok(loaded) => loaded.settings.listen,
                Err(errors) => anyhow::bail!(
                    "cannot take the daemon's address from {}:\n  {}",
                    path.display(),
                    errors.join("\n  ")
                ),
            },
            None => Settings::default_listen(),
        };
        Ok(format!("http://{}", reachable(listen)))
    }
}

/// A wildcard listen address is served on every interface: reach it on loopback.
fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(url: Option<&str>, config: Option<PathBuf>) -> anyhow::Result<String> {
        DaemonUrl {
            url: url.map(str::to_string),
            config,
        }
        .resolve()
    }

    #[test]
    fn the_flag_then_the_settings_then_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("poolpilot.yaml");
        std::fs::write(&config, "listen: 0.0.0.0:9555\n").unwrap();
        assert_eq!(
            url(Some("http://h:1/"), Some(config.clone())).unwrap(),
            "http://h:1"
        );
        assert_eq!(url(None, Some(config)).unwrap(), "http://127.0.0.1:9555");
        assert_eq!(url(None, None).unwrap(), "http://127.0.0.1:9464");
        let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/local.yaml");
        assert_eq!(url(None, Some(local)).unwrap(), "http://127.0.0.1:9464");
    }

    #[test]
    fn a_broken_settings_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("poolpilot.yaml");
        std::fs::write(&config, "listen: nowhere\n").unwrap();
        let error = url(None, Some(config)).unwrap_err().to_string();
        assert!(error.contains("poolpilot.yaml"), "{error}");
    }

    use std::path::Path;
}
