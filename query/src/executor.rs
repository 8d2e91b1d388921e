//! The runtime queries execute on, apart from the one that answers HTTP and ingest requests.
//!
//! DataFusion does its CPU work (decoding Parquet, hashing, sorting) inside async tasks, a
//! batch at a time. On the server's runtime a heavy query would hold its worker threads for
//! the length of each batch and queue ingest requests behind it. On threads of its own it is
//! scheduled by the kernel beside the ingest threads, which keep their share of the cores
//! (the pattern of influxdb3's `DedicatedExecutor`).

use std::future::Future;
use std::sync::Arc;

use tokio::runtime::{Handle, Runtime};

/// A dedicated multi-thread runtime, shut down without blocking when the last handle goes.
#[derive(Clone)]
pub(crate) struct Executor {
    runtime: Arc<Owned>,
}

struct Owned(Option<Runtime>);

impl Drop for Owned {
    fn drop(&mut self) {
        // `Runtime`'s own drop blocks, which panics inside another runtime; in-flight queries
        // are abandoned here anyway (their callers are gone).
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Executor {
    /// `threads` worker threads; 0 is one per core.
    pub(crate) fn new(threads: usize) -> std::io::Result<Self> {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.thread_name("loupe-query").enable_all();
        if threads > 0 {
            b.worker_threads(threads);
        }
        Ok(Executor {
            runtime: Arc::new(Owned(Some(b.build()?))),
        })
    }

    fn handle(&self) -> &Handle {
        self.runtime
            .0
            .as_ref()
            .expect("the runtime is only taken on drop")
            .handle()
    }

    /// Runs `fut` on the query runtime. Dropping the returned future (a client that went away,
    /// a timeout) aborts the task, which drops DataFusion's streams and stops the query.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        let mut task = AbortOnDrop(self.handle().spawn(fut));
        (&mut task.0).await
    }
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
