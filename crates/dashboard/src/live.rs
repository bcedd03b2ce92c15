//! The live dashboard: while someone watches, the view's change count is
//! looked at every [`REFRESH`]; when it moved, the dashboard is read once
//! and handed to every open stream. A burst of events thus costs one read
//! per [`REFRESH`], however many watch, and changes made by another
//! replica of the service (which share the database) are seen just the
//! same.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kernel::shutdown::Shutdown;
use tokio::sync::watch;

use crate::store::DashboardView;

/// How often a watched dashboard is looked at, at most once per change.
pub const REFRESH: Duration = Duration::from_millis(250);

/// The dashboard, as JSON, for every stream; `None` until first read.
type Latest = Option<Arc<str>>;

/// What the HTTP side holds: the latest dashboard, and how many watch it.
#[derive(Clone, Debug)]
pub struct Live {
    latest: watch::Receiver<Latest>,
    watchers: Arc<AtomicUsize>,
}

/// The worker that reads the dashboard for those who watch it.
pub struct Broadcaster {
    view: DashboardView,
    latest: watch::Sender<Latest>,
    watchers: Arc<AtomicUsize>,
}

pub fn channel(view: DashboardView) -> (Live, Broadcaster) {
    let (sender, receiver) = watch::channel(None);
    let watchers = Arc::new(AtomicUsize::new(0));
    (
        Live {
            latest: receiver,
            watchers: watchers.clone(),
        },
        Broadcaster {
            view,
            latest: sender,
            watchers,
        },
    )
}

impl Live {
    /// Starts watching: the dashboards read from now on.
    pub fn subscribe(&self) -> Subscription {
        self.watchers.fetch_add(1, Ordering::SeqCst);
        let mut latest = self.latest.clone();
        latest.borrow_and_update();
        Subscription {
            latest,
            watchers: self.watchers.clone(),
        }
    }
}

/// One open stream's view of the live dashboard; watching ends when it is
/// dropped.
pub struct Subscription {
    latest: watch::Receiver<Latest>,
    watchers: Arc<AtomicUsize>,
}

impl Subscription {
    /// The next dashboard read, or `None` once the service shuts down.
    pub async fn next(&mut self) -> Option<Arc<str>> {
        loop {
            self.latest.changed().await.ok()?;
            if let Some(json) = self.latest.borrow_and_update().clone() {
                return Some(json);
            }
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.watchers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Broadcaster {
    /// Runs until shutdown; then every open stream ends (the sender goes).
    pub async fn run(self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let mut shown: Option<i64> = None;
        loop {
            tokio::select! {
                () = tokio::time::sleep(REFRESH) => {}
                () = shutdown.wait() => return Ok(()),
            }
            if self.watchers.load(Ordering::SeqCst) == 0 {
                shown = None;
                continue;
            }
            let changes = match self.view.changes().await {
                Ok(changes) => changes,
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "reading the dashboard's change count failed"
                    );
                    continue;
                }
            };
            if shown == Some(changes) {
                continue;
            }
            let read = async {
                let dashboard = self.view.dashboard().await?;
                anyhow::Ok(serde_json::to_string(&dashboard)?)
            };
            match read.await {
                Ok(json) => {
                    self.latest.send_replace(Some(json.into()));
                    shown = Some(changes);
                }
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "reading the dashboard failed");
                }
            }
        }
    }
}
