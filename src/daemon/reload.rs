//! Policy reload: on SIGHUP and whenever the policy directory's content changes.
//!
//! Change detection hashes the *content* of every policy file each tick instead of watching
//! inotify events or mtimes: a Kubernetes ConfigMap update swaps the `..data` symlink, which
//! changes no mtime of the visible `*.yaml` links, yet their content changes. Reading a few
//! small files per tick costs microseconds and needs no extra crate or thread.
//!
//! A set that fails validation is rejected whole: every error is returned (the caller logs and
//! counts each), the last good set stays in force, and the same broken content is not reported
//! again every tick.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::policy::{self, Policy, PolicyErrors};

pub struct PolicyWatcher {
    paths: Vec<PathBuf>,
    global_budget_per_hour: Option<f64>,
    /// Fingerprint of the content last loaded or last rejected.
    seen: Option<[u8; 32]>,
}

/// What a check found.
#[derive(Debug)]
pub enum Reload {
    Unchanged,
    Loaded(Vec<Policy>),
    Rejected(PolicyErrors),
}

impl PolicyWatcher {
    pub fn new(paths: Vec<PathBuf>, global_budget_per_hour: Option<f64>) -> PolicyWatcher {
        PolicyWatcher {
            paths,
            global_budget_per_hour,
            seen: None,
        }
    }

    /// Loads the set if its content changed since the last check, or always when `force`
    /// (SIGHUP: the operator asked, so a still-broken set is reported again).
    pub fn check(&mut self, force: bool) -> Reload {
        let fingerprint = self.fingerprint();
        if !force && self.seen == Some(fingerprint) {
            return Reload::Unchanged;
        }
        self.seen = Some(fingerprint);
        match policy::load_set(&self.paths, self.global_budget_per_hour) {
            Ok(set) => Reload::Loaded(set),
            Err(errors) => Reload::Rejected(errors),
        }
    }

    /// SHA-256 over the sorted list of policy files and their bytes (listing errors included,
    /// so a directory that appears or vanishes is a change too).
    fn fingerprint(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        match policy::policy_files(&self.paths) {
            Ok(files) => {
                for file in files {
                    hash.update(file.as_os_str().as_encoded_bytes());
                    hash.update([0]);
                    match std::fs::read(&file) {
                        Ok(bytes) => hash.update(&bytes),
                        Err(e) => hash.update(e.to_string()),
                    }
                    hash.update([0]);
                }
            }
            Err(errors) => hash.update(errors.to_string()),
        }
        hash.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    pub(crate) fn policy_yaml(pool: &str, max: u32) -> String {
        format!(
            "pool: {pool}\nsignals:\n  - spark: {{ master: http://127.0.0.1:1, cores_per_waiting_app: 2 }}\n    per_worker: 2\n\
             workers:\n  kubernetes: {{ namespace: ns, deployment: {pool} }}\nbounds: {{ min: 1, max: {max} }}\n"
        )
    }

    fn names(set: &[Policy]) -> Vec<(String, u32)> {
        set.iter()
            .map(|p| (p.name().to_string(), p.spec.bounds.max))
            .collect()
    }

    #[test]
    fn loads_once_then_only_on_change_and_rejects_a_broken_set_once() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.yaml"), policy_yaml("a", 4)).unwrap();
        let mut w = PolicyWatcher::new(vec![dir.path().to_path_buf()], None);
        let Reload::Loaded(set) = w.check(false) else {
            panic!()
        };
        assert_eq!(names(&set), [("a".to_string(), 4)]);
        assert!(matches!(w.check(false), Reload::Unchanged));

        std::fs::write(
            dir.path().join("b.yaml"),
            "pool: b\nbounds: {min: 1, max: x}\n",
        )
        .unwrap();
        let Reload::Rejected(errors) = w.check(false) else {
            panic!()
        };
        assert!(errors.to_string().contains("b.yaml"), "{errors}");
        assert!(
            matches!(w.check(false), Reload::Unchanged),
            "the same broken content is reported once"
        );
        assert!(
            matches!(w.check(true), Reload::Rejected(_)),
            "SIGHUP reports it again"
        );

        std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
        assert!(matches!(w.check(false), Reload::Loaded(_)));
    }

    /// The layout the kubelet writes for a ConfigMap volume, and its atomic update.
    #[test]
    fn follows_a_configmap_data_symlink_swap() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("..2026_01")).unwrap();
        std::fs::write(root.join("..2026_01/etl.yaml"), policy_yaml("etl", 4)).unwrap();
        symlink("..2026_01", root.join("..data")).unwrap();
        symlink("..data/etl.yaml", root.join("etl.yaml")).unwrap();
        let mut w = PolicyWatcher::new(vec![root.to_path_buf()], None);
        let Reload::Loaded(set) = w.check(false) else {
            panic!()
        };
        assert_eq!(names(&set), [("etl".to_string(), 4)]);

        std::fs::create_dir(root.join("..2026_02")).unwrap();
        std::fs::write(root.join("..2026_02/etl.yaml"), policy_yaml("etl", 9)).unwrap();
        symlink("..2026_02", root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        std::fs::remove_dir_all(root.join("..2026_01")).unwrap();
        let Reload::Loaded(set) = w.check(false) else {
            panic!("the swap must be seen")
        };
        assert_eq!(names(&set), [("etl".to_string(), 9)]);
    }
}
