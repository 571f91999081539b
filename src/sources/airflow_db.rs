//! Airflow metadata DB (PostgreSQL): the Helm chart's KEDA query, rendered exactly as the chart
//! renders it (engine-apis.md §2.5, anchors.md §1.5), so a pool moved from KEDA to poolpilot sees
//! the same number. Demand is the `COUNT(*)` under the chart's WHERE clause; the chart's own
//! `ceil(COUNT(*)::decimal / worker_concurrency)` is reported alongside (`keda_workers`), read
//! in the same snapshot, with `worker_concurrency` = the signal's `per_worker`.
//!
//! TLS to the database is not supported yet (`NoTls`): use `sslmode=disable` or a local proxy.

use async_trait::async_trait;
use tokio_postgres::{IsolationLevel, NoTls};

use super::error::SourceError;
use super::secret;
use super::{MetricSource, Reading};
use crate::policy::{AirflowDbSignal, AirflowExecutor};

/// The chart's WHERE clause for an executor (chart `values.yaml` d6ba4817), plus the
/// `queue IN (...)` variant documented in `chart/docs/keda.rst` when `queues` is set.
pub fn keda_where(executor: AirflowExecutor, kubernetes_queue: &str, queues: &[String]) -> String {
    let mut sql = String::from("WHERE (state='running' OR state='queued')");
    match executor {
        AirflowExecutor::Celery => {}
        AirflowExecutor::CeleryKubernetes => {
            sql.push_str(&format!(" AND queue != {}", literal(kubernetes_queue)))
        }
        AirflowExecutor::Kubernetes => {
            sql.push_str(" AND executor IS DISTINCT FROM 'KubernetesExecutor'")
        }
        AirflowExecutor::Edge => sql.push_str(" AND executor IS DISTINCT FROM 'EdgeExecutor'"),
    }
    if !queues.is_empty() {
        let list: Vec<String> = queues.iter().map(|q| literal(q)).collect();
        sql.push_str(&format!(" AND queue IN ({})", list.join(", ")));
    }
    sql
}

/// The chart's query text, e.g. `SELECT ceil(COUNT(*)::decimal / 16) FROM task_instance WHERE ...`.
pub fn keda_query(worker_concurrency: f64, where_clause: &str) -> String {
    format!(
        "SELECT ceil(COUNT(*)::decimal / {}) FROM task_instance {where_clause}",
        number(worker_concurrency)
    )
}

/// The demand query: the same rows, counted.
pub fn count_query(where_clause: &str) -> String {
    format!("SELECT COUNT(*) FROM task_instance {where_clause}")
}

/// A SQL string literal (quotes doubled), as the chart writes `'{{ value }}'`.
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// `16` for 16.0 (the chart renders an integer), the shortest exact form otherwise.
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

pub struct AirflowDbSource {
    name: String,
    spec: AirflowDbSignal,
    worker_concurrency: f64,
}

impl AirflowDbSource {
    pub fn new(spec: &AirflowDbSignal, worker_concurrency: f64) -> AirflowDbSource {
        AirflowDbSource {
            name: "airflow_db task_instance (KEDA query)".into(),
            spec: spec.clone(),
            worker_concurrency,
        }
    }

    async fn query(&self, conn_str: &str) -> Result<(f64, f64), SourceError> {
        let (mut client, connection) = tokio_postgres::connect(conn_str, NoTls)
            .await
            .map_err(db_error)?;
        let driver = tokio::spawn(connection);
        let where_clause = keda_where(
            self.spec.executor,
            &self.spec.kubernetes_queue,
            &self.spec.queues,
        );
        let result = async {
            // One snapshot for both statements, so `keda_workers` always matches `count`.
            let tx = client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let count: i64 = tx
                .query_one(count_query(&where_clause).as_str(), &[])
                .await?
                .try_get(0)?;
            let keda: String = tx
                .query_one(
                    format!(
                        "SELECT ({})::text",
                        keda_query(self.worker_concurrency, &where_clause)
                    )
                    .as_str(),
                    &[],
                )
                .await?
                .try_get(0)?;
            tx.commit().await?;
            Ok::<_, tokio_postgres::Error>((count, keda))
        }
        .await;
        drop(client);
        driver.abort();
        let (count, keda) = result.map_err(db_error)?;
        let keda: f64 = keda.parse().map_err(|_| {
            SourceError::malformed(
                TARGET,
                format!("KEDA query returned `{keda}`, not a number"),
            )
        })?;
        Ok((count as f64, keda))
    }
}

impl AirflowDbSource {
    /// Running task instances per worker `hostname` (the Celery drain's busy-ness), from the
    /// same `task_instance` table the demand query reads, restricted to the signal's queues.
    pub async fn running_by_host(&self) -> Result<Vec<(String, i64)>, SourceError> {
        let conn_str = secret::read(&self.spec.connection, TARGET)?;
        let timeout = self.spec.timeout;
        let query = async {
            let (client, connection) = tokio_postgres::connect(&conn_str, NoTls)
                .await
                .map_err(db_error)?;
            let driver = tokio::spawn(connection);
            let rows = client
                .query(running_by_host_query(&self.spec.queues).as_str(), &[])
                .await;
            drop(client);
            driver.abort();
            rows.map_err(db_error)?
                .iter()
                .map(|row| Ok((row.try_get::<_, String>(0)?, row.try_get::<_, i64>(1)?)))
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()
                .map_err(db_error)
        };
        tokio::time::timeout(timeout, query)
            .await
            .unwrap_or(Err(SourceError::Timeout {
                target: TARGET.into(),
                after: timeout,
            }))
    }
}

/// `hostname` is what the Celery worker reports for the task instance it runs (Airflow's
/// `TaskInstance.hostname`, set when the task starts; the pod name on Kubernetes).
pub fn running_by_host_query(queues: &[String]) -> String {
    let queue_filter = if queues.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = queues.iter().map(|q| literal(q)).collect();
        format!(" AND queue IN ({})", list.join(", "))
    };
    format!(
        "SELECT hostname, COUNT(*) FROM task_instance WHERE state = 'running' \
         AND hostname IS NOT NULL AND hostname <> ''{queue_filter} GROUP BY hostname"
    )
}

const TARGET: &str = "airflow metadata DB";

/// Login problems are `Auth`, a wrong schema or SQL error `Malformed`, the rest `Unreachable`.
/// Error text comes from the server or the socket, never from the connection string.
fn db_error(e: tokio_postgres::Error) -> SourceError {
    let target = TARGET.to_string();
    match e.code() {
        // Class 28: invalid authorization specification / invalid password.
        Some(code) if code.code().starts_with("28") => SourceError::Auth {
            target,
            detail: e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string()),
        },
        Some(_) => SourceError::Malformed {
            target,
            detail: e.as_db_error().map_or_else(
                || e.to_string(),
                |d| format!("{} ({})", d.message(), d.code().code()),
            ),
        },
        None if e.as_db_error().is_none()
            && e.to_string().contains("invalid connection string") =>
        {
            SourceError::Unreachable {
                target,
                detail: "the connection string (from the secret) does not parse".into(),
            }
        }
        None => SourceError::Unreachable {
            target,
            detail: source_chain(&e),
        },
    }
}

fn source_chain(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[async_trait]
impl MetricSource for AirflowDbSource {
    async fn poll(&self) -> Result<Reading, SourceError> {
        let conn_str = secret::read(&self.spec.connection, TARGET)?;
        let timeout = self.spec.timeout;
        let (count, keda_workers) = tokio::time::timeout(timeout, self.query(&conn_str))
            .await
            .unwrap_or(Err(SourceError::Timeout {
                target: TARGET.into(),
                after: timeout,
            }))?;
        Ok(Reading {
            labels: Vec::new(),
            demand: count,
            raw: vec![("running_or_queued", count), ("keda_workers", keda_workers)],
        })
    }

    fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_celery_matches_the_chart_test_rendering() {
        // apache/airflow helm-tests test_keda.py::build_query, default concurrency 16.
        let w = keda_where(AirflowExecutor::Celery, "kubernetes", &[]);
        assert_eq!(
            keda_query(16.0, &w),
            "SELECT ceil(COUNT(*)::decimal / 16) FROM task_instance WHERE (state='running' OR state='queued')"
        );
    }

    #[test]
    fn executor_filters_match_the_chart_values() {
        let ck = keda_where(AirflowExecutor::CeleryKubernetes, "kubernetes", &[]);
        assert_eq!(
            ck,
            "WHERE (state='running' OR state='queued') AND queue != 'kubernetes'"
        );
        assert!(
            keda_where(AirflowExecutor::Kubernetes, "k", &[])
                .ends_with("AND executor IS DISTINCT FROM 'KubernetesExecutor'")
        );
        assert!(
            keda_where(AirflowExecutor::Edge, "k", &[])
                .ends_with("AND executor IS DISTINCT FROM 'EdgeExecutor'")
        );
    }

    #[test]
    fn queue_list_is_quoted_and_escaped() {
        let w = keda_where(
            AirflowExecutor::Celery,
            "k",
            &["default".into(), "o'brien".into()],
        );
        assert!(w.ends_with("AND queue IN ('default', 'o''brien')"), "{w}");
        assert_eq!(
            count_query(&w),
            format!("SELECT COUNT(*) FROM task_instance {w}")
        );
    }

    #[test]
    fn running_by_host_counts_running_rows_per_hostname() {
        assert_eq!(
            running_by_host_query(&[]),
            "SELECT hostname, COUNT(*) FROM task_instance WHERE state = 'running' AND hostname IS NOT NULL AND hostname <> '' GROUP BY hostname"
        );
        assert!(running_by_host_query(&["a'b".into()]).contains("AND queue IN ('a''b')"));
    }

    #[test]
    fn fractional_concurrency_is_rendered_exactly() {
        assert!(keda_query(2.5, "WHERE true").contains("/ 2.5)"));
    }
}
