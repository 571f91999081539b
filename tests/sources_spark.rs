//! The Spark source against a REAL standalone master + 2 workers (tests/peers/spark.sh): real
//! demand (apps wanting more cores than the 4 that exist, a cluster-mode driver that fits on no
//! worker), and poolpilot's numbers must equal what the master's own `/json/` says.

mod support;

use std::process::{Child, Command};
use std::time::Duration;

use poolpilot::policy::{HttpOptions, SparkSignal};
use poolpilot::sources::spark::SparkSource;
use poolpilot::sources::{MetricSource, Reading};
use serde_json::Value;

const CORES_PER_WAITING_APP: u32 = 2;
const CORES_PER_DRIVER: u32 = 8;

fn source(master: &str) -> SparkSource {
    SparkSource::new(&SparkSignal {
        master: master.to_string(),
        cores_per_waiting_app: CORES_PER_WAITING_APP,
        cores_per_submitted_driver: CORES_PER_DRIVER,
        http: HttpOptions::default(),
    })
}

async fn master_json(master: &str) -> Value {
    reqwest::get(format!("{master}/json/"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn count_state(list: &Value, state: &str) -> usize {
    list.as_array()
        .map_or(0, |a| a.iter().filter(|x| x["state"] == state).count())
}

/// The master's own view of the numbers the source reports.
fn summary(v: &Value) -> Vec<(&'static str, f64)> {
    let workers = &v["workers"];
    vec![
        ("cores_used", v["coresused"].as_f64().unwrap()),
        ("cores_total", v["cores"].as_f64().unwrap()),
        (
            "waiting_apps",
            count_state(&v["activeapps"], "WAITING") as f64,
        ),
        (
            "running_apps",
            count_state(&v["activeapps"], "RUNNING") as f64,
        ),
        (
            "submitted_drivers",
            count_state(&v["activedrivers"], "SUBMITTED") as f64,
        ),
        ("alive_workers", v["aliveworkers"].as_f64().unwrap()),
        (
            "decommissioned_workers",
            count_state(workers, "DECOMMISSIONED") as f64,
        ),
        ("dead_workers", count_state(workers, "DEAD") as f64),
    ]
}

/// Polls between two identical master snapshots, so the comparison is not racing the master.
async fn consistent_poll(master: &str) -> (Reading, Vec<(&'static str, f64)>) {
    let src = source(master);
    for _ in 0..20 {
        let before = summary(&master_json(master).await);
        let reading = src
            .poll()
            .await
            .unwrap_or_else(|e| panic!("poll failed: {e}"));
        let after = summary(&master_json(master).await);
        if before == after {
            return (reading, before);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    panic!("the master's state never held still for one poll");
}

fn assert_matches_master(reading: &Reading, master: &[(&'static str, f64)]) {
    for (name, value) in master {
        assert_eq!(
            reading.raw_value(name),
            Some(*value),
            "{name}: poolpilot vs master /json/"
        );
    }
    let get = |n: &str| master.iter().find(|(k, _)| *k == n).unwrap().1;
    let expected = get("cores_used")
        + get("waiting_apps") * f64::from(CORES_PER_WAITING_APP)
        + get("submitted_drivers") * f64::from(CORES_PER_DRIVER);
    assert_eq!(reading.demand, expected);
    assert_eq!(
        reading.raw_value("cores_free"),
        Some((get("cores_total") - get("cores_used")).max(0.0))
    );
}

/// Kills what the test started (client-mode drivers by process group, cluster drivers by REST).
struct Demand {
    children: Vec<Child>,
    rest: String,
    drivers: Vec<String>,
}

impl Drop for Demand {
    fn drop(&mut self) {
        for child in &mut self.children {
            // A negative PID names the process group created by `process_group(0)`.
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
        for id in &self.drivers {
            let _ = Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-X",
                    "POST",
                    &format!("{}/v1/submissions/kill/{id}", self.rest),
                ])
                .status();
        }
    }
}

fn submit(args: &[String], log: &str) -> Child {
    use std::os::unix::process::CommandExt;
    let submit = std::env::var("SPARK_SUBMIT").expect("SPARK_SUBMIT");
    let python = std::env::var("SPARK_PYTHON").expect("SPARK_PYTHON");
    let out = std::fs::File::create(std::env::temp_dir().join(log)).unwrap();
    Command::new(submit)
        .args(args)
        .env("PYSPARK_PYTHON", python)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn idle_master_numbers_equal_the_masters_json() {
    let Some(master) = support::peer("SPARK_MASTER_WEB") else {
        return;
    };
    let (reading, truth) = consistent_poll(&master).await;
    assert_matches_master(&reading, &truth);
    assert!(reading.raw_value("alive_workers").unwrap() >= 1.0);
}

#[tokio::test]
async fn waiting_apps_and_a_submitted_driver_are_demand() {
    let Some(master) = support::peer("SPARK_MASTER_WEB") else {
        return;
    };
    let spark_url = support::peer("SPARK_MASTER_URL").unwrap();
    let rest = support::peer("SPARK_MASTER_REST").unwrap();
    let app = support::peer("SPARK_SLEEPY_APP").unwrap();
    let client_app =
        |name: &str, cores_max: &str, ui_port: &str, secs: &str, parts: &str| -> Vec<String> {
            let mut a = vec![
                "--master", &spark_url, "--conf", cores_max, "--conf", ui_port,
            ];
            a.extend([
                "--conf",
                "spark.executor.cores=1",
                "--conf",
                "spark.executor.memory=512m",
            ]);
            a.extend([
                "--conf",
                "spark.driver.memory=512m",
                &app,
                name,
                secs,
                parts,
            ]);
            a.into_iter().map(String::from).collect()
        };
    let mut demand = Demand {
        children: Vec::new(),
        rest,
        drivers: Vec::new(),
    };
    // The cluster has 4 cores (2 workers × 2). appA (cores.max=4) takes them all first; appB,
    // submitted once every core is granted, then gets no executor and stays WAITING.
    let saturated = |v: &Value| {
        v["cores"]
            .as_f64()
            .is_some_and(|c| c > 0.0 && v["coresused"].as_f64() == Some(c))
    };
    let app_a = client_app(
        "pp-appA",
        "spark.cores.max=4",
        "spark.ui.port=4050",
        "120",
        "4",
    );
    demand.children.push(submit(&app_a, "pp-appA.log"));
    wait_for(&master, "appA running on every core", |v| {
        app_state(v, "pp-appA").is_some_and(|(s, _)| s == "RUNNING") && saturated(v)
    })
    .await;
    let app_b = client_app(
        "pp-appB",
        "spark.cores.max=2",
        "spark.ui.port=4051",
        "60",
        "2",
    );
    demand.children.push(submit(&app_b, "pp-appB.log"));
    // A cluster-mode driver asking for 8 cores fits on no 2-core worker: SUBMITTED for good.
    let jars = format!("{}/jars", std::env::var("SPARK_HOME").unwrap());
    let jar = std::fs::read_dir(jars)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path().to_string_lossy().to_string()))
        .find(|p| p.rsplit('/').next().unwrap().starts_with("spark-core"))
        .unwrap();
    let driver_args = [
        "--master",
        &spark_url,
        "--deploy-mode",
        "cluster",
        "--driver-cores",
        "8",
        "--driver-memory",
        "512m",
        "--class",
        "org.apache.spark.examples.SparkPi",
        &jar,
    ];
    let mut submitter = submit(&driver_args.map(String::from), "pp-driver.log");
    let _ = submitter.wait();
    let log = std::fs::read_to_string(std::env::temp_dir().join("pp-driver.log")).unwrap();
    let driver_id = log
        .split_whitespace()
        .find(|w| w.starts_with("driver-"))
        .unwrap_or_else(|| panic!("no driver id in the spark-submit output:\n{log}"))
        .to_string();
    demand.drivers.push(driver_id.clone());
    // Still saturated, appB WAITING, our driver SUBMITTED.
    wait_for(&master, "appB waiting and the driver submitted", |v| {
        let waiting = app_state(v, "pp-appB").is_some_and(|(s, _)| s == "WAITING");
        let ours = |d: &Value| d["id"] == driver_id.as_str() && d["state"] == "SUBMITTED";
        let submitted = v["activedrivers"]
            .as_array()
            .is_some_and(|d| d.iter().any(ours));
        waiting && submitted && saturated(v)
    })
    .await;

    let (reading, truth) = consistent_poll(&master).await;
    assert_matches_master(&reading, &truth);
    let cores = reading.raw_value("cores_total").unwrap();
    assert_eq!(reading.raw_value("cores_free"), Some(0.0));
    // More cores wanted than exist: all in use + at least one waiting app + the driver.
    assert!(
        reading.demand >= cores + f64::from(CORES_PER_WAITING_APP + CORES_PER_DRIVER),
        "{reading:?}"
    );
    drop(demand);
}

fn app_state<'a>(v: &'a Value, name: &str) -> Option<(&'a str, u64)> {
    let app = v["activeapps"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == name)?;
    Some((app["state"].as_str()?, app["cores"].as_u64()?))
}

async fn wait_for(master: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..360 {
        let v = master_json(master).await;
        if ok(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!(
        "{what}: not reached within 180 s; logs in {}",
        std::env::temp_dir().display()
    );
}
