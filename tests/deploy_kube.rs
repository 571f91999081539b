//! The Kubernetes manifests (deploy/kubernetes/): every overlay renders with `kubectl
//! kustomize`, keeps the house rules (own ServiceAccount, pool rights in each pool's namespace,
//! seccomp RuntimeDefault, read-only root, no privilege escalation, a sidecar without a
//! readiness probe, the one image reference at the crate's version), ships settings and
//! policies that `poolpilot validate` accepts, and is accepted by a real kube-apiserver
//! (`kubectl apply --server-side --dry-run=server`, tests/peers/kube.sh).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const IMAGE: &str = "ghcr.io/poolpilot/poolpilot";
const OVERLAYS: [&str; 4] = ["airflow", "spark", "standalone", "trino"];

fn overlay_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/kubernetes/overlays")
        .join(name)
}

fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?} did not start (kubectl is needed): {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `kubectl kustomize DIR`: the YAML text and each object as JSON.
fn render(name: &str) -> (String, Vec<Value>) {
    let text = run(Command::new("kubectl")
        .arg("kustomize")
        .arg(overlay_dir(name)));
    let objects = text
        .split("\n---\n")
        .map(|doc| {
            poolpilot::policy::yaml::parse(doc)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"))
                .value
        })
        .collect();
    (text, objects)
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn ns(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or("")
}

#[test]
fn the_overlays_are_the_four_shipped_ones() {
    let found: BTreeSet<String> = std::fs::read_dir(overlay_dir(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(found, OVERLAYS.iter().map(|s| s.to_string()).collect());
}

#[test]
fn every_overlay_keeps_the_house_rules() {
    for name in OVERLAYS {
        let (_, objects) = render(name);
        let deployments = of_kind(&objects, "Deployment");
        let mut poolpilots = 0;
        for d in deployments {
            let pod = &d["spec"]["template"]["spec"];
            let containers = pod["containers"].as_array().unwrap();
            let Some(pp) = containers.iter().find(|c| c["name"] == "poolpilot") else {
                continue;
            };
            poolpilots += 1;
            let at = format!("{name}: {}", d["metadata"]["name"]);
            assert_eq!(
                pp["image"],
                format!("{IMAGE}:{}", env!("CARGO_PKG_VERSION")),
                "{at}: the image comes from components/image at the crate's version"
            );
            let sc = &pp["securityContext"];
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{at}");
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{at}");
            assert_eq!(
                sc["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{at}"
            );
            let seccomp = sc["seccompProfile"]["type"]
                .as_str()
                .or(pod["securityContext"]["seccompProfile"]["type"].as_str());
            assert_eq!(seccomp, Some("RuntimeDefault"), "{at}");
            let non_root = sc["runAsNonRoot"]
                .as_bool()
                .or(pod["securityContext"]["runAsNonRoot"].as_bool());
            assert_eq!(non_root, Some(true), "{at}");
            assert!(pp["livenessProbe"].is_object(), "{at}: liveness probe");
            // Own ServiceAccount, in the same namespace.
            assert_eq!(pod["serviceAccountName"], "poolpilot", "{at}");
            assert!(
                of_kind(&objects, "ServiceAccount")
                    .iter()
                    .any(|sa| sa["metadata"]["name"] == "poolpilot" && ns(sa) == ns(d)),
                "{at}: no ServiceAccount poolpilot in {}",
                ns(d)
            );
            if containers.len() > 1 {
                // A sidecar: its readiness would gate the host's Service endpoints.
                assert!(
                    pp["readinessProbe"].is_null(),
                    "{at}: a sidecar must not have a readiness probe"
                );
                assert_eq!(pod["automountServiceAccountToken"], false, "{at}");
                for c in containers.iter().filter(|c| c["name"] != "poolpilot") {
                    let mounts = c["volumeMounts"].as_array().cloned().unwrap_or_default();
                    assert!(
                        mounts.iter().all(|m| m["name"] != "poolpilot-token"),
                        "{at}: the host container {} must not get poolpilot's token",
                        c["name"]
                    );
                }
                assert!(
                    pp["volumeMounts"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|m| m["name"] == "poolpilot-token"),
                    "{at}: poolpilot's own token"
                );
            } else {
                assert!(
                    pp["readinessProbe"].is_object(),
                    "{at}: own pod, own readiness"
                );
            }
        }
        assert_eq!(poolpilots, 1, "{name}: one poolpilot workload");
    }
}

#[test]
fn pool_rights_are_in_each_pools_namespace_and_nowhere_else() {
    for name in OVERLAYS {
        let (_, objects) = render(name);
        let daemon_ns = ns(of_kind(&objects, "ServiceAccount")[0]).to_string();
        let policies = of_kind(&objects, "ConfigMap")
            .into_iter()
            .find(|c| c["metadata"]["name"] == "poolpilot-policies")
            .unwrap_or_else(|| panic!("{name}: no poolpilot-policies ConfigMap"));
        let mut pool_namespaces = BTreeSet::new();
        for (file, text) in policies["data"].as_object().unwrap() {
            let policy = poolpilot::policy::yaml::parse(text.as_str().unwrap())
                .unwrap()
                .value;
            let ns = policy["workers"]["kubernetes"]["namespace"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}/{file}: a Kubernetes pool"));
            pool_namespaces.insert(ns.to_string());
        }
        let bound: BTreeSet<String> = of_kind(&objects, "RoleBinding")
            .into_iter()
            .filter(|b| b["roleRef"]["name"] == "poolpilot-pools")
            .map(|b| {
                assert_eq!(
                    b["subjects"],
                    serde_json::json!([{"kind": "ServiceAccount", "name": "poolpilot", "namespace": daemon_ns}]),
                    "{name}: bound to poolpilot's own ServiceAccount"
                );
                ns(b).to_string()
            })
            .collect();
        assert_eq!(
            bound, pool_namespaces,
            "{name}: pool rights exactly where the pools are"
        );
        for role in of_kind(&objects, "Role") {
            let rules = role["rules"].to_string();
            assert!(!rules.contains('*'), "{name}: no wildcards: {rules}");
            if role["metadata"]["name"] == "poolpilot-leader" {
                assert_eq!(ns(role), daemon_ns, "{name}: Lease rights only at home");
            }
        }
        assert!(
            of_kind(&objects, "ClusterRole").is_empty(),
            "{name}: no cluster rights"
        );
    }
}

#[test]
fn shipped_settings_and_policies_validate() {
    for name in OVERLAYS {
        let (_, objects) = render(name);
        let dir = tempfile::tempdir().unwrap();
        let policies = dir.path().join("policies");
        std::fs::create_dir(&policies).unwrap();
        let mut settings = None;
        let mut daemon_ns = String::new();
        for cm in of_kind(&objects, "ConfigMap") {
            let cm_name = cm["metadata"]["name"].as_str().unwrap();
            for (file, text) in cm["data"].as_object().unwrap() {
                if cm_name == "poolpilot-policies" {
                    std::fs::write(policies.join(file), text.as_str().unwrap()).unwrap();
                } else if cm_name.starts_with("poolpilot-settings") {
                    let path = dir.path().join(file);
                    std::fs::write(&path, text.as_str().unwrap()).unwrap();
                    settings = Some(path);
                    daemon_ns = ns(cm).to_string();
                }
            }
        }
        let settings = settings.unwrap_or_else(|| panic!("{name}: no settings ConfigMap"));
        let out = Command::new(env!("CARGO_BIN_EXE_poolpilot"))
            .arg("validate")
            .arg("--config")
            .arg(&settings)
            .arg(&policies)
            // What the container's downward-API env gives the daemon.
            .env("POOLPILOT_LEADER_ELECTION__NAMESPACE", &daemon_ns)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_image_reference_lives_in_one_place() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let component =
        std::fs::read_to_string(root.join("deploy/kubernetes/components/image/kustomization.yaml"))
            .unwrap();
    let image = poolpilot::policy::yaml::parse(&component).unwrap().value["images"][0].clone();
    assert_eq!(image["newName"], IMAGE);
    assert_eq!(
        image["newTag"],
        env!("CARGO_PKG_VERSION"),
        "tag = Cargo.toml version"
    );
    // Every other mention in deploy/ and the READMEs (build commands, docs) names the same
    // tag, and no manifest sets an image of its own (they say `image: poolpilot`).
    let mut files = walk(&root.join("deploy"));
    files.extend([root.join("README.md"), root.join("ARCHITECTURE.md")]);
    let expected = format!("{IMAGE}:{}", env!("CARGO_PKG_VERSION"));
    let mut mentions = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (at, _) in text.match_indices(&format!("{IMAGE}:")) {
            let tag_end = text[at..]
                .find(|c: char| c.is_whitespace() || c == '`' || c == '"')
                .map_or(text.len(), |e| at + e);
            assert_eq!(&text[at..tag_end], expected, "{}", file.display());
            mentions += 1;
        }
        if file.extension().is_some_and(|e| e == "yaml") {
            for line in text
                .lines()
                .filter(|l| l.trim_start().starts_with("image:"))
            {
                let image = line.trim_start()["image:".len()..]
                    .split('#')
                    .next()
                    .unwrap()
                    .trim();
                assert!(
                    image != IMAGE && !image.starts_with(&format!("{IMAGE}:")),
                    "{}: a poolpilot image set outside components/image: {line}",
                    file.display()
                );
            }
        }
    }
    assert!(
        mentions >= 2,
        "the build command names the image: {mentions}"
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files.extend(walk(&p));
        } else {
            files.push(p);
        }
    }
    files
}

#[test]
fn every_overlay_is_accepted_by_the_apiserver_in_a_server_side_dry_run() {
    let Some(kubeconfig) = support::peer("POOLPILOT_TEST_KUBECONFIG") else {
        return;
    };
    for name in OVERLAYS {
        let (text, objects) = render(name);
        // The namespaces are the cluster's (not part of the overlays): create them first.
        let namespaces: BTreeSet<&str> = objects.iter().map(ns).filter(|n| !n.is_empty()).collect();
        for n in namespaces {
            let out = Command::new("kubectl")
                .args(["--kubeconfig", &kubeconfig, "create", "namespace", n])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success() || err.contains("AlreadyExists"),
                "{err}"
            );
        }
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &text).unwrap();
        let applied = run(Command::new("kubectl").args([
            "--kubeconfig",
            &kubeconfig,
            "apply",
            "--server-side",
            "--dry-run=server",
            "--field-manager=poolpilot-deploy-test",
            "-f",
            file.path().to_str().unwrap(),
        ]));
        // One line per object ("... serverside-applied (server dry run)").
        assert_eq!(
            applied
                .lines()
                .filter(|l| l.contains("(server dry run)"))
                .count(),
            objects.len(),
            "{name}: {applied}"
        );
    }
}
