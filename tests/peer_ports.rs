//! The real peers listen on fixed ports OUTSIDE Linux's ephemeral port range (32768–60999, the
//! default `/proc/sys/net/ipv4/ip_local_port_range`): the kernel gives any outgoing connection a
//! local port from that range, so a peer listening inside it fails at random with "address
//! already in use" (tests/peers/lib.sh). This test reads the scripts that start listeners and
//! fails on any port number in that range, so the rule cannot quietly regress.

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

/// Linux's default ephemeral range, which CI's machines use.
const EPHEMERAL: RangeInclusive<u32> = 32768..=60999;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every `*.sh` in the folders that start listeners: the peers, run-all and the benches.
fn scripts() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = ["tests/peers", "tests", "benches"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root().join(dir)).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "sh"))
        .collect();
    files.sort();
    files
}

/// `line` without its comment (`#` at the start or after a blank; `${#a[@]}` and `$#` stay).
fn code_of(line: &str) -> &str {
    let bytes = line.as_bytes();
    let start = (0..bytes.len())
        .find(|&i| bytes[i] == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()))
        .unwrap_or(bytes.len());
    &line[..start]
}

/// The whole numbers of `line` that stand alone (not part of a word such as `ami-12c6146b`),
/// with their value.
fn numbers(line: &str) -> Vec<u32> {
    line.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|word| word.parse().ok())
        .collect()
}

/// Port numbers in port context: `*PORT*=N`, `*PORTS=(N M)`, `--*port N`/`--*port=N`, `-p N`,
/// `*.port=N`, `host:N`.
fn port_numbers(line: &str) -> Vec<u32> {
    let lower = line.to_ascii_lowercase();
    let mut found = Vec::new();
    let tokens: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '(' || c == ')')
        .filter(|t| !t.is_empty())
        .collect();
    for (i, token) in tokens.iter().enumerate() {
        // NAME_PORT=N, --secure-port=N, spark.master.rest.port=N
        if let Some((key, value)) = token.split_once('=')
            && key.ends_with("port")
            && let Ok(n) = value.parse()
        {
            found.push(n);
        }
        // --port N, --webui-port N, -p N; and PORTS=(N M) whose values follow as tokens
        if ((token.ends_with("port") && token.starts_with('-')) || *token == "-p")
            && let Some(n) = tokens.get(i + 1).and_then(|t| t.parse().ok())
        {
            found.push(n);
        }
        if token.ends_with("ports=") {
            found.extend(tokens[i + 1..].iter().map_while(|t| t.parse::<u32>().ok()));
        }
        // 127.0.0.1:N, localhost:N, :N
        if let Some((_, port)) = token.rsplit_once(':') {
            let digits: String = port.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse() {
                found.push(n);
            }
        }
    }
    found
}

#[test]
fn no_script_listens_inside_the_ephemeral_port_range() {
    let mut offenders = Vec::new();
    let mut ports_seen = 0;
    for file in scripts() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.strip_prefix(root()).unwrap().display().to_string();
        for (i, line) in text.lines().enumerate() {
            let code = code_of(line);
            ports_seen += port_numbers(code).len();
            // Any standalone number in the range counts, not only the ones in port context.
            for n in numbers(code).into_iter().filter(|n| EPHEMERAL.contains(n)) {
                offenders.push(format!("{name}:{}: {n} in `{}`", i + 1, line.trim()));
            }
        }
    }
    // The scan must see the peers' real port assignments, or it proves nothing.
    assert!(ports_seen >= 10, "only {ports_seen} port numbers found");
    assert!(
        offenders.is_empty(),
        "ports inside the ephemeral range {EPHEMERAL:?} (any outgoing connection may hold them; \
         pick one below 32768, see tests/peers/lib.sh):\n{}",
        offenders.join("\n")
    );
}

/// Each peer script's own port assignments are found and lie outside the range.
#[test]
fn every_peer_script_declares_its_ports_outside_the_range() {
    for peer in [
        "airflow",
        "kube",
        "moto",
        "prometheus",
        "spark",
        "redis",
        "rabbitmq",
    ] {
        let file = root().join(format!("tests/peers/{peer}.sh"));
        let text = std::fs::read_to_string(&file).unwrap();
        let ports: Vec<u32> = text.lines().map(code_of).flat_map(port_numbers).collect();
        assert!(!ports.is_empty(), "{peer}.sh: no port assignment found");
        // 0 = no listener (kube-controller-manager's --port=0) or one the kernel picks.
        for port in ports.into_iter().filter(|&p| p != 0) {
            assert!(
                (1024..65536).contains(&port) && !EPHEMERAL.contains(&port),
                "{peer}.sh: port {port} is inside the ephemeral range {EPHEMERAL:?} or not a port"
            );
        }
    }
}

#[test]
fn the_scan_recognises_port_assignments() {
    assert_eq!(port_numbers("PG_PORT=55432"), [55432]);
    assert_eq!(port_numbers("WORKER_UI_PORTS=(8081 8082)"), [8081, 8082]);
    assert_eq!(
        port_numbers("  --host 127.0.0.1 --port 7077 --webui-port 8080"),
        [7077, 8080]
    );
    assert_eq!(port_numbers("moto_server -H 127.0.0.1 -p 5000"), [5000]);
    assert_eq!(port_numbers("-Dspark.master.rest.port=6066\""), [6066]);
    assert_eq!(port_numbers("export URL=http://127.0.0.1:59090/x"), [59090]);
    assert_eq!(numbers("ami-12c6146b 52380,7"), [52380, 7]);
    assert_eq!(code_of("PORT=5000 # not 55000"), "PORT=5000 ");
    assert_eq!(code_of("n=${#HOSTS[@]} $#"), "n=${#HOSTS[@]} $#");
}
