//! `loupe serve`: the collector and the query engine on one listener.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::{Arc, RwLock};

use loupe_collector::{Collector, CollectorConfig};
use loupe_query::QueryEngine;
use loupe_query::slo::config::SloConfig;
use loupe_query::slo::definition::Slo;
use loupe_query::slo::service::SloService;
use loupe_query::slo::status::SloStatus;
use tokio::net::TcpListener;

use crate::auth::{self, Keys};

/// How often the collector's own request events are appended to `_loupe`.
const SELF_TELEMETRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// A running server.
pub(crate) struct Server {
    pub(crate) addr: SocketAddr,
    /// Where the PostgreSQL door listens, if it is on.
    pub(crate) pg_addr: Option<SocketAddr>,
    pub(crate) collector: Collector,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The routes of one loupe process: ingest behind ingest keys, queries, SLOs and `/metrics`
/// behind query keys, `/healthz` open.
pub(crate) fn app(
    collector: Collector,
    engine: QueryEngine,
    keys: Keys,
    slo: Option<SloFeed>,
) -> Router {
    let metrics = Router::new()
        .route("/metrics", get(metrics))
        .with_state(MetricsState {
            collector: collector.clone(),
            slo: slo.clone(),
        });
    let ingest = loupe_collector::router(collector)
        .route_layer(from_fn_with_state(keys.clone(), auth::require_ingest));
    let mut query = loupe_query::router(engine).merge(metrics);
    if let Some(feed) = slo {
        query = query.merge(loupe_query::slo::api::router(feed.service));
    }
    let query = query.route_layer(from_fn_with_state(keys, auth::require_query));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(ingest)
        .merge(query)
}

/// The SLOs a server watches and their latest statuses (refreshed in the background).
#[derive(Clone)]
pub(crate) struct SloFeed {
    pub(crate) service: SloService,
    pub(crate) latest: Arc<RwLock<Vec<SloStatus>>>,
}

#[derive(Clone)]
struct MetricsState {
    collector: Collector,
    slo: Option<SloFeed>,
}

/// `GET /metrics`: Prometheus text exposition format, version 0.0.4: the collector's own
/// metrics, and each SLO's as of its last refresh (see `loupe_query::slo::feed`).
async fn metrics(State(state): State<MetricsState>) -> impl IntoResponse {
    let mut body = state.collector.render_metrics();
    if let Some(feed) = &state.slo {
        let latest = feed.latest.read().expect("no writer panics holding it");
        loupe_query::slo::feed::render_metrics(&latest, &mut body);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

/// What an SLO's refresh changed, to be logged.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    /// It fails, and did not before or failed otherwise.
    Failing,
    /// It failed before and does not now.
    Recovered,
    /// As before.
    None,
}

/// The SLOs whose status failed at the last refresh, with the error. A broken SLO (a field
/// dropped from the dataset) fails at every refresh, every few seconds: logged when it starts
/// failing, when its error changes and when it recovers, not each time.
#[derive(Debug, Default)]
struct Failing(std::collections::HashMap<String, String>);

impl Failing {
    fn update(&mut self, slo: &str, error: Option<&str>) -> Change {
        match error {
            Some(e) => match self.0.insert(slo.to_owned(), e.to_owned()) {
                Some(before) if before == e => Change::None,
                _ => Change::Failing,
            },
            None if self.0.remove(slo).is_some() => Change::Recovered,
            None => Change::None,
        }
    }
}

/// Refreshes the SLO statuses every `interval` (the first at once) for `/metrics`, and
/// pushes them to `remote_write` when set. One SLO that fails is left out, and logged as
/// [`Failing`] says.
fn spawn_slo_refresh(
    feed: SloFeed,
    interval: std::time::Duration,
    remote_write: Option<String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = Failing::default();
        loop {
            tick.tick().await;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            // In a task of its own, so a panic in one refresh is logged and the next runs
            // (otherwise /metrics would serve the last statuses forever).
            let service = feed.service.clone();
            let at = now.as_micros() as i64;
            let pass = tokio::spawn(async move { service.status_all(at, &[]).await });
            let mut fresh = Vec::new();
            match pass.await {
                Ok(statuses) => {
                    for (name, status) in statuses {
                        let error = status.as_ref().err().map(ToString::to_string);
                        match failing.update(&name, error.as_deref()) {
                            Change::Failing => {
                                let e = error.unwrap_or_default();
                                tracing::warn!(slo = %name, error = %e, "SLO status failed")
                            }
                            Change::Recovered => {
                                tracing::info!(slo = %name, "SLO status recovered")
                            }
                            Change::None => {}
                        }
                        if let Ok((s, _)) = status {
                            fresh.push(s);
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "the SLO refresh failed; trying again at the next")
                }
            }
            if let Some(url) = &remote_write {
                use loupe_query::slo::feed;
                let body = feed::encode(&feed::write_request(&fresh, now.as_millis() as i64));
                // The spec: retry 5xx and 429 with backoff, never other 4xx; a push that
                // is still failing when the next is due gives way to it.
                let mut backoff = std::time::Duration::from_millis(250);
                loop {
                    match feed::push(&client, url, body.clone()).await {
                        Ok(()) => break,
                        Err(e @ feed::PushError::Retryable { .. }) if backoff < interval / 2 => {
                            tracing::warn!(error = %e, "remote write failed; retrying");
                            tokio::time::sleep(backoff).await;
                            backoff *= 2;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "remote write failed; dropped");
                            break;
                        }
                    }
                }
            }
            *feed.latest.write().expect("no writer panics holding it") = fresh;
        }
    })
}

/// The collector's settings with the query engine's summarizer: the files compaction writes,
/// and those `loupe summarize` catches up on, get the summary the outliers read (see
/// `loupe_query::outliers::summary`). Flushed files get none (see `CollectorConfig::summarize`).
pub(crate) fn writing_summaries(config: CollectorConfig) -> CollectorConfig {
    CollectorConfig {
        summarize: loupe_store::summary::Summarizer(Some(std::sync::Arc::new(
            loupe_query::outliers::summary::Summaries,
        ))),
        ..config
    }
}

/// Opens the collector over `dir` with summaries (see [`writing_summaries`]), for a command
/// that writes into a data directory itself; when a running server holds the directory, the
/// error says so and what to do instead (`when_locked`).
pub(crate) async fn open_collector(
    dir: &Path,
    config: CollectorConfig,
    when_locked: &str,
) -> anyhow::Result<Collector> {
    let path = dir.to_path_buf();
    let config = writing_summaries(config);
    let opened = tokio::task::spawn_blocking(move || Collector::open(&path, config)).await?;
    match opened {
        Ok(c) => Ok(c),
        Err(loupe_collector::Error::Locked { path }) => anyhow::bail!(
            "data directory {} is in use by another loupe process ({} is locked), most likely \
             a running `loupe serve`: {when_locked}",
            dir.display(),
            path.display()
        ),
        Err(e) => Err(e).with_context(|| format!("opening data directory {}", dir.display())),
    }
}

impl Server {
    /// Opens the store (replaying its WAL) and starts listening.
    pub(crate) async fn start(
        data_dir: &Path,
        http: SocketAddr,
        pg: Option<SocketAddr>,
        config: CollectorConfig,
        query: loupe_query::QueryConfig,
        keys: Keys,
        slos: Option<(Vec<Slo>, SloConfig)>,
    ) -> anyhow::Result<Server> {
        let dir = data_dir.to_path_buf();
        let config = writing_summaries(config);
        let collector = tokio::task::spawn_blocking(move || Collector::open(&dir, config))
            .await?
            .with_context(|| format!("opening data directory {}", data_dir.display()))?;
        let engine = QueryEngine::with_config(collector.store().clone(), query)?;
        let slo_feed = match slos {
            Some((slos, config)) => {
                let policy = config.policy().map_err(|p| {
                    anyhow::anyhow!("invalid [slo] settings:\n  {}", p.join("\n  "))
                })?;
                let feed = SloFeed {
                    service: SloService::new(
                        engine.clone(),
                        collector.store().clone(),
                        slos,
                        policy,
                    ),
                    latest: Arc::default(),
                };
                let task = spawn_slo_refresh(
                    feed.clone(),
                    std::time::Duration::from_secs(config.refresh_interval_secs),
                    config.remote_write_url.clone(),
                );
                Some((feed, task))
            }
            None => None,
        };
        let listener = TcpListener::bind(http)
            .await
            .with_context(|| format!("listening on {http}"))?;
        let addr = listener.local_addr()?;
        let pg_door = match pg {
            Some(pg) => {
                let check: Option<loupe_query::pg::PasswordCheck> = if keys.is_empty() {
                    None
                } else {
                    let keys = keys.clone();
                    Some(std::sync::Arc::new(move |p: &str| keys.may_query(p)))
                };
                let (bound, task) = loupe_query::pg::spawn(pg, engine.clone(), check)
                    .await
                    .with_context(|| format!("listening for PostgreSQL on {pg}"))?;
                Some((bound, task))
            }
            None => None,
        };
        let pg_addr = pg_door.as_ref().map(|(a, _)| *a);
        let pg_task = pg_door.map(|(_, t)| t);
        let flusher = collector.spawn_background_flush();
        let compactor = collector.spawn_background_compaction();
        let telemetry = collector.spawn_self_telemetry(SELF_TELEMETRY_INTERVAL);
        let sampling = collector.spawn_background_sampling();
        let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
        let app = app(
            collector.clone(),
            engine,
            keys,
            slo_feed.as_ref().map(|(f, _)| f.clone()),
        );
        let slo_task = slo_feed.map(|(_, t)| t);
        let c = collector.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await?;
            // The last second of self events, before the final flush.
            c.append_self_events().await;
            c.shutdown().await;
            flusher.abort();
            compactor.abort();
            telemetry.abort();
            sampling.abort();
            if let Some(t) = slo_task {
                t.abort();
            }
            if let Some(t) = pg_task {
                t.abort();
            }
            Ok(())
        });
        Ok(Server {
            addr,
            pg_addr,
            collector,
            shutdown,
            task,
        })
    }

    /// Reads the config file again and installs its dataset settings (sampling). Other
    /// settings need a restart; a file with any problem changes nothing.
    pub(crate) fn reload(&self, source: Option<&Path>) -> anyhow::Result<()> {
        let Some(path) = source else {
            tracing::warn!("reload asked for, but the server was started without a config file");
            return Ok(());
        };
        let config = crate::config::Config::load(Some(path))?;
        let report = self.collector.reload_datasets(&config.collector.datasets)?;
        for (dataset, restored) in &report.rebuilt {
            tracing::info!(%dataset, restored = ?restored.restored, skipped = ?restored.skipped,
                recomputed = ?restored.recomputed, "sampling reloaded");
        }
        for dataset in &report.stopped {
            tracing::info!(%dataset, "no longer sampled");
        }
        tracing::info!(path = %path.display(),
            "reloaded dataset settings (other settings take effect at the next start)");
        Ok(())
    }

    /// Stops accepting, finishes in-flight requests, flushes, and returns.
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(());
        self.task.await?
    }
}

/// A stream of SIGHUPs: each asks for a reload of the dataset settings.
pub(crate) fn reload_signal() -> anyhow::Result<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    Ok(signal(SignalKind::hangup())?)
}

/// Registers for SIGINT and SIGTERM now, and returns a future that resolves on either. Register
/// before announcing readiness: a signal that arrives between the two would otherwise take the
/// default action and kill the process without its final flush.
pub(crate) fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{Change, Failing};

    #[test]
    fn a_failing_slo_is_logged_when_it_starts_changes_and_recovers_not_at_every_refresh() {
        let mut f = Failing::default();
        assert_eq!(f.update("checkout", None), Change::None);
        assert_eq!(f.update("checkout", Some("no field x")), Change::Failing);
        assert_eq!(f.update("checkout", Some("no field x")), Change::None);
        assert_eq!(f.update("search", Some("no field x")), Change::Failing);
        assert_eq!(f.update("checkout", Some("no dataset")), Change::Failing);
        assert_eq!(f.update("checkout", None), Change::Recovered);
        assert_eq!(f.update("checkout", None), Change::None);
        assert_eq!(f.update("checkout", Some("no dataset")), Change::Failing);
    }
}
