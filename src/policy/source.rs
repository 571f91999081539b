//! The closed set of signal kinds. Everything that differs between kinds — name, poll
//! deadline, which drains it can carry out, what a drainer needs from it, its semantic checks
//! and how its source is built — is decided here, in one `match` per question, so adding a
//! kind is a change in this file (and the compiler then asks for the new [`SourceBuilder`]
//! method). No other module looks at the engine keys of a [`SignalSpec`].

use std::time::Duration;

use super::model::{AirflowExecutor, DrainMethod};
use super::signals::*;

/// One signal's source: exactly one engine key of a [`SignalSpec`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SourceSpec<'a> {
    Trino(&'a TrinoSignal),
    Presto(&'a PrestoSignal),
    Airflow(&'a AirflowSignal),
    AirflowDb(&'a AirflowDbSignal),
    Spark(&'a SparkSignal),
    Prometheus(&'a PrometheusSignal),
    Yarn(&'a YarnSignal),
    Celery(&'a CelerySignal),
}

/// How many engine keys a signal names when it does not name exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotOneKind(pub usize);

/// Builds a kind's I/O object; implemented by `sources` (metric sources). One method per
/// kind, so a new kind cannot be forgotten there.
pub trait SourceBuilder {
    type Out;
    fn trino(&self, s: &TrinoSignal) -> Self::Out;
    fn presto(&self, s: &PrestoSignal) -> Self::Out;
    fn airflow(&self, s: &AirflowSignal) -> Self::Out;
    fn airflow_db(&self, s: &AirflowDbSignal, per_worker: f64) -> Self::Out;
    fn spark(&self, s: &SparkSignal) -> Self::Out;
    fn prometheus(&self, s: &PrometheusSignal) -> Self::Out;
    fn yarn(&self, s: &YarnSignal) -> Self::Out;
    fn celery(&self, s: &CelerySignal) -> Self::Out;
}

/// What a drainer needs from the signal it drains through (data only; `drain` builds it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DrainTarget<'a> {
    /// Trino or Presto graceful shutdown through the coordinator's worker list.
    Coordinator {
        url: &'a str,
        user: &'a str,
        presto: bool,
    },
    /// Spark standalone decommission through the master.
    SparkMaster { master: &'a str },
    /// YARN NodeManager graceful decommission through the ResourceManager.
    Yarn(&'a YarnSignal),
    /// Celery idle-first, from the Airflow REST API's running task instances per host.
    Airflow(&'a AirflowSignal),
    /// Celery idle-first, from the metadata DB's running task instances per host.
    AirflowDb(&'a AirflowDbSignal),
    /// Celery `cancel_consumer` on the victim, then wait for its `active`/`reserved` to empty,
    /// through the signal's broker.
    CeleryBroker(&'a CelerySignal),
}

impl SignalSpec {
    /// The signal's one source; `Err` when it names no or several engines (a validation error).
    pub fn source(&self) -> Result<SourceSpec<'_>, NotOneKind> {
        let all = [
            self.trino.as_ref().map(SourceSpec::Trino),
            self.presto.as_ref().map(SourceSpec::Presto),
            self.airflow.as_ref().map(SourceSpec::Airflow),
            self.airflow_db.as_ref().map(SourceSpec::AirflowDb),
            self.spark.as_ref().map(SourceSpec::Spark),
            self.prometheus.as_ref().map(SourceSpec::Prometheus),
            self.yarn.as_ref().map(SourceSpec::Yarn),
            self.celery.as_ref().map(SourceSpec::Celery),
        ];
        let mut set = all.into_iter().flatten();
        match (set.next(), set.count()) {
            (Some(one), 0) => Ok(one),
            (None, _) => Err(NotOneKind(0)),
            (Some(_), more) => Err(NotOneKind(1 + more)),
        }
    }

    /// The kind's name, `unconfigured` for an invalid signal (metric label, log field).
    pub fn kind_name(&self) -> &'static str {
        self.source().map_or("unconfigured", |s| s.name())
    }
}

/// A signal kind without its settings: the facts that do not depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Trino,
    Presto,
    Airflow,
    AirflowDb,
    Spark,
    Prometheus,
    Yarn,
    Celery,
}

impl SourceKind {
    pub const ALL: [SourceKind; 8] = [
        SourceKind::Trino,
        SourceKind::Presto,
        SourceKind::Airflow,
        SourceKind::AirflowDb,
        SourceKind::Spark,
        SourceKind::Prometheus,
        SourceKind::Yarn,
        SourceKind::Celery,
    ];

    /// The engine key, as written in a policy file (also the metric label).
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Trino => "trino",
            SourceKind::Presto => "presto",
            SourceKind::Airflow => "airflow",
            SourceKind::AirflowDb => "airflow_db",
            SourceKind::Spark => "spark",
            SourceKind::Prometheus => "prometheus",
            SourceKind::Yarn => "yarn",
            SourceKind::Celery => "celery",
        }
    }

    /// The drain methods this kind can carry out; the first is what `method: auto` picks.
    pub fn drains(self) -> &'static [DrainMethod] {
        match self {
            SourceKind::Trino | SourceKind::Presto => &[DrainMethod::Trino],
            SourceKind::Airflow | SourceKind::AirflowDb => &[DrainMethod::Celery],
            SourceKind::Spark => &[DrainMethod::Spark],
            SourceKind::Prometheus => &[],
            SourceKind::Yarn => &[DrainMethod::Yarn],
            SourceKind::Celery => &[DrainMethod::Celery],
        }
    }

    /// Among a policy's signals that can carry out the same drain, the one it goes through
    /// (lowest first, then the first listed): the Celery broker stops the victim's consumers,
    /// which Airflow's task lists (an Airflow pool with a `celery:` signal too) cannot.
    pub fn drain_preference(self) -> u8 {
        match self {
            SourceKind::Celery => 0,
            SourceKind::Trino
            | SourceKind::Presto
            | SourceKind::Airflow
            | SourceKind::AirflowDb
            | SourceKind::Spark
            | SourceKind::Prometheus
            | SourceKind::Yarn => 1,
        }
    }

    /// Which kinds can carry out `method` (for validation hints).
    pub fn that_drain(method: DrainMethod) -> Vec<&'static str> {
        SourceKind::ALL
            .into_iter()
            .filter(|k| k.drains().contains(&method))
            .map(SourceKind::name)
            .collect()
    }
}

impl<'a> SourceSpec<'a> {
    pub fn kind(&self) -> SourceKind {
        match self {
            SourceSpec::Trino(_) => SourceKind::Trino,
            SourceSpec::Presto(_) => SourceKind::Presto,
            SourceSpec::Airflow(_) => SourceKind::Airflow,
            SourceSpec::AirflowDb(_) => SourceKind::AirflowDb,
            SourceSpec::Spark(_) => SourceKind::Spark,
            SourceSpec::Prometheus(_) => SourceKind::Prometheus,
            SourceSpec::Yarn(_) => SourceKind::Yarn,
            SourceSpec::Celery(_) => SourceKind::Celery,
        }
    }

    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    pub fn drains(&self) -> &'static [DrainMethod] {
        self.kind().drains()
    }

    /// The source's own timeout: the daemon bounds each poll by this plus a little slack.
    pub fn poll_timeout(&self) -> Duration {
        match self {
            SourceSpec::Trino(s) => s.http.timeout,
            SourceSpec::Presto(s) => s.http.timeout,
            SourceSpec::Airflow(s) => s.http.timeout,
            SourceSpec::AirflowDb(s) => s.timeout,
            SourceSpec::Spark(s) => s.http.timeout,
            SourceSpec::Prometheus(s) => s.http.timeout,
            // metrics, then the scheduler when a queue is set: two exchanges in a row
            SourceSpec::Yarn(s) if s.queue.is_some() => s.http.timeout * 2,
            SourceSpec::Yarn(s) => s.http.timeout,
            SourceSpec::Celery(s) => s.timeout,
        }
    }

    /// What a drainer of this kind reads; `None` for kinds that cannot drain.
    pub fn drain_target(&self) -> Option<DrainTarget<'a>> {
        match *self {
            SourceSpec::Trino(t) => Some(DrainTarget::Coordinator {
                url: &t.coordinator,
                user: &t.user,
                presto: false,
            }),
            SourceSpec::Presto(p) => Some(DrainTarget::Coordinator {
                url: &p.coordinator,
                user: &p.user,
                presto: true,
            }),
            SourceSpec::Airflow(a) => Some(DrainTarget::Airflow(a)),
            SourceSpec::AirflowDb(d) => Some(DrainTarget::AirflowDb(d)),
            SourceSpec::Spark(s) => Some(DrainTarget::SparkMaster { master: &s.master }),
            SourceSpec::Prometheus(_) => None,
            SourceSpec::Yarn(y) => Some(DrainTarget::Yarn(y)),
            SourceSpec::Celery(c) => Some(DrainTarget::CeleryBroker(c)),
        }
    }

    /// Every secret the kind reads, with its field path below the signal (`trino.http.auth…`),
    /// so each is validated wherever a kind keeps it.
    pub fn secrets(&self) -> Vec<(String, &'a SecretRef)> {
        let http = |kind: &str, h: &'a HttpOptions| match &h.auth {
            Some(HttpAuth::Basic { password, .. }) => {
                vec![(format!("{kind}.http.auth.basic.password"), password)]
            }
            Some(HttpAuth::Bearer { token }) => {
                vec![(format!("{kind}.http.auth.bearer.token"), token)]
            }
            None => Vec::new(),
        };
        match *self {
            SourceSpec::Trino(t) => http("trino", &t.http),
            SourceSpec::Presto(p) => http("presto", &p.http),
            SourceSpec::Airflow(a) => http("airflow", &a.http),
            SourceSpec::AirflowDb(d) => vec![("airflow_db.connection".to_string(), &d.connection)],
            SourceSpec::Spark(s) => http("spark", &s.http),
            SourceSpec::Prometheus(p) => http("prometheus", &p.http),
            SourceSpec::Yarn(y) => http("yarn", &y.http),
            SourceSpec::Celery(c) => c
                .password
                .iter()
                .map(|p| ("celery.password".to_string(), p))
                .collect(),
        }
    }

    /// Builds this kind's I/O object with `builder`.
    pub fn build<B: SourceBuilder>(&self, builder: &B, per_worker: f64) -> B::Out {
        match self {
            SourceSpec::Trino(s) => builder.trino(s),
            SourceSpec::Presto(s) => builder.presto(s),
            SourceSpec::Airflow(s) => builder.airflow(s),
            SourceSpec::AirflowDb(s) => builder.airflow_db(s, per_worker),
            SourceSpec::Spark(s) => builder.spark(s),
            SourceSpec::Prometheus(s) => builder.prometheus(s),
            SourceSpec::Yarn(s) => builder.yarn(s),
            SourceSpec::Celery(s) => builder.celery(s),
        }
    }

    /// The kind's own semantic checks; `path` is the signal's field path (`signals[0]`).
    pub(super) fn check(&self, path: &str, out: &mut Vec<super::problem::Problem>) {
        use super::problem::{check_http, problem};
        match self {
            SourceSpec::Trino(t) => {
                check_http(
                    &format!("{path}.trino"),
                    "coordinator",
                    &t.coordinator,
                    &t.http,
                    out,
                );
                if t.user.is_empty() {
                    out.push(problem(format!("{path}.trino.user"), "must not be empty"));
                }
            }
            SourceSpec::Presto(p) => check_http(
                &format!("{path}.presto"),
                "coordinator",
                &p.coordinator,
                &p.http,
                out,
            ),
            SourceSpec::Airflow(a) => {
                check_http(&format!("{path}.airflow"), "api", &a.api, &a.http, out)
            }
            SourceSpec::AirflowDb(d) => {
                if d.timeout.is_zero() {
                    out.push(problem(
                        format!("{path}.airflow_db.timeout"),
                        "must be longer than 0s",
                    ));
                }
                if d.executor == AirflowExecutor::CeleryKubernetes && d.kubernetes_queue.is_empty()
                {
                    out.push(problem(
                        format!("{path}.airflow_db.kubernetes_queue"),
                        "must not be empty",
                    ));
                }
            }
            SourceSpec::Spark(sp) => {
                check_http(
                    &format!("{path}.spark"),
                    "master",
                    &sp.master,
                    &sp.http,
                    out,
                );
                if sp.cores_per_waiting_app == 0 {
                    out.push(problem(
                        format!("{path}.spark.cores_per_waiting_app"),
                        "must be at least 1",
                    ));
                }
            }
            SourceSpec::Prometheus(p) => {
                check_http(&format!("{path}.prometheus"), "url", &p.url, &p.http, out);
                if let Err(why) = super::checks::promql_shape(&p.query) {
                    out.push(problem(format!("{path}.prometheus.query"), why));
                }
            }
            SourceSpec::Yarn(y) => {
                let base = format!("{path}.yarn");
                check_http(&base, "resource_manager", &y.resource_manager, &y.http, out);
                if y.queue.as_deref().is_some_and(|q| q.trim().is_empty()) {
                    out.push(problem(format!("{base}.queue"), "must not be empty"));
                }
                if y.user.as_deref().is_some_and(|u| u.trim().is_empty()) {
                    out.push(problem(format!("{base}.user"), "must not be empty"));
                }
                if let Some(d) = &y.decommission {
                    if d.exclude_file.extension().and_then(|e| e.to_str()) != Some("xml") {
                        out.push(problem(
                            format!("{base}.decommission.exclude_file"),
                            "must be the RM's XML exclude file (`.xml`): only that format carries a per-host timeout",
                        ));
                    }
                    if d.refresh_command
                        .first()
                        .is_none_or(|c| c.trim().is_empty())
                    {
                        out.push(problem(
                            format!("{base}.decommission.refresh_command"),
                            "must name a program, e.g. [yarn, rmadmin, -refreshNodes, -g, \"-1\", -server]",
                        ));
                    }
                }
            }
            SourceSpec::Celery(c) => check_celery(&format!("{path}.celery"), c, out),
        }
    }
}

/// `celery:` checks: a broker URL Celery and poolpilot both understand, queues, the
/// management API for RabbitMQ, a reply window inside the poll deadline.
fn check_celery(base: &str, c: &CelerySignal, out: &mut Vec<super::problem::Problem>) {
    use super::problem::{check_url, problem};
    match crate::sources::celery::parse_broker(&c.broker) {
        Err(message) => out.push((
            format!("{base}.broker"),
            message,
            Some("e.g. `redis://redis:6379/0` or `amqp://superset@rabbitmq:5672//`".into()),
        )),
        Ok(crate::sources::celery::BrokerUrl::Amqp { .. }) => match &c.management {
            None => out.push((
                format!("{base}.management"),
                "an amqp:// broker needs the RabbitMQ management API URL".into(),
                Some("e.g. `management: http://rabbitmq:15672`".into()),
            )),
            Some(url) => check_url(&format!("{base}.management"), url, out),
        },
        Ok(crate::sources::celery::BrokerUrl::Redis { .. }) => {
            if c.management.is_some() {
                out.push(problem(
                    format!("{base}.management"),
                    "only an amqp:// broker has a management API",
                ));
            }
        }
    }
    if c.queues.is_empty() {
        out.push(problem(
            format!("{base}.queues"),
            "must name at least one queue",
        ));
    }
    for (i, q) in c.queues.iter().enumerate() {
        if q.is_empty() {
            out.push(problem(format!("{base}.queues[{i}]"), "must not be empty"));
        }
    }
    if c.timeout < Duration::from_millis(100) || c.timeout > Duration::from_secs(600) {
        out.push(problem(
            format!("{base}.timeout"),
            "must be from 100ms to 10m",
        ));
    }
    if c.reply_window.is_zero() || c.reply_window >= c.timeout {
        out.push(problem(
            format!("{base}.reply_window"),
            "must be longer than 0s and shorter than `timeout`",
        ));
    }
    if c.max_body_bytes == 0 || c.max_body_bytes > 1 << 30 {
        out.push(problem(
            format!("{base}.max_body_bytes"),
            "must be from 1 to 1073741824 (1 GiB)",
        ));
    }
}

/// The drain method a policy's scale-downs really use: `auto` resolved to the first
/// signal's default (`none` when that kind cannot drain). Validation guarantees that an
/// explicit method is one some signal can carry out.
pub fn resolve_drain(method: DrainMethod, signals: &[SignalSpec]) -> DrainMethod {
    match method {
        DrainMethod::Auto => signals
            .first()
            .and_then(|s| s.source().ok())
            .and_then(|s| s.drains().first().copied())
            .unwrap_or(DrainMethod::None),
        explicit => explicit,
    }
}

/// The signal a drain of `method` goes through: the first whose kind can carry it out.
pub fn drain_target(method: DrainMethod, signals: &[SignalSpec]) -> Option<DrainTarget<'_>> {
    let method = resolve_drain(method, signals);
    let able = signals
        .iter()
        .filter_map(|s| s.source().ok())
        .filter(|s| s.drains().contains(&method));
    able.min_by_key(|s| s.kind().drain_preference())
        .and_then(|s| s.drain_target())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signals(yaml: &str) -> Vec<SignalSpec> {
        let text = format!(
            "pool: p\nsignals:\n{yaml}workers:\n  kubernetes: {{ namespace: ns, deployment: w }}\nbounds: {{ min: 1, max: 5 }}\n"
        );
        super::super::load_str(&text, "p.yaml")
            .unwrap_or_else(|e| panic!("{e}"))
            .spec
            .signals
    }

    #[test]
    fn a_celery_drain_goes_through_the_broker_when_the_policy_names_one() {
        let both = signals(
            "  - airflow: { api: \"http://airflow:8080\" }\n    per_worker: 16\n\
             \x20 - celery: { broker: \"redis://redis:6379/0\", queues: [default] }\n    per_worker: 16\n",
        );
        assert_eq!(resolve_drain(DrainMethod::Auto, &both), DrainMethod::Celery);
        assert!(matches!(
            drain_target(DrainMethod::Celery, &both),
            Some(DrainTarget::CeleryBroker(c)) if c.queues == ["default"]
        ));
        let airflow_only =
            signals("  - airflow: { api: \"http://airflow:8080\" }\n    per_worker: 16\n");
        assert!(matches!(
            drain_target(DrainMethod::Celery, &airflow_only),
            Some(DrainTarget::Airflow(_))
        ));
        assert_eq!(
            SourceKind::that_drain(DrainMethod::Celery),
            ["airflow", "airflow_db", "celery"]
        );
    }
}
