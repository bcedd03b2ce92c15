//! Many small writes, one transaction (group commit).
//!
//! A request that must store one row and its event before it answers pays
//! for a BEGIN and a COMMIT; on SQLite, with one writer, every other such
//! request queues behind it. A [`GroupCommit`] hands each write to one task
//! that takes whatever writes are waiting, stores them in one transaction,
//! and answers each once that transaction has committed. Under load a
//! batch grows, so the cost per write falls as the load rises.
//!
//! A batch is not closed the moment the first write arrives: the writer
//! first gives the scheduler a few turns ([`GATHER_TURNS`] at most, ending
//! at the first that brings nothing), so that requests already running
//! towards a write join it. Without that a commit took one or two writes
//! (it is quick, so few arrive during it), and each paid for every page it
//! touched: about eight pages of WAL per booking in each of reservation's
//! and payment's databases. With it a batch holds about ten, and the
//! platform booked 16–20 % more a second at 17 % less CPU each
//! (`docs/benchmarks.md`). A turn is no timer: at light load the first
//! brings nothing and the write goes at once.

use std::future::Future;

use tokio::sync::{mpsc, oneshot};

use crate::retry::{is_transient, Unavailable};

/// The most turns of the scheduler a batch waits for more writes.
pub const GATHER_TURNS: usize = 8;

/// A writer that stores items of type `I` in batches and answers each with
/// an `A`.
#[derive(Debug)]
pub struct GroupCommit<I, A> {
    queue: mpsc::Sender<Waiting<I, A>>,
}

impl<I, A> Clone for GroupCommit<I, A> {
    fn clone(&self) -> Self {
        GroupCommit {
            queue: self.queue.clone(),
        }
    }
}

#[derive(Debug)]
struct Waiting<I, A> {
    item: I,
    answer: oneshot::Sender<Result<A, Failure>>,
}

/// Why a batch failed, as every item of it is told.
#[derive(Debug, Clone)]
struct Failure {
    detail: String,
    /// A passing fault (the store unreachable, busy): the caller may
    /// answer "try again" rather than "failed".
    transient: bool,
}

impl<I: Send + 'static, A: Send + 'static> GroupCommit<I, A> {
    /// Starts the writer (needs a Tokio runtime). `write` stores a batch in
    /// one transaction and returns one answer per item, in order; an error
    /// fails every item of the batch.
    pub fn start<F, Fut>(name: &'static str, max_batch: usize, write: F) -> GroupCommit<I, A>
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Vec<A>>> + Send + 'static,
    {
        let max_batch = max_batch.max(1);
        let (queue, mut waiting) = mpsc::channel::<Waiting<I, A>>(4 * max_batch);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(max_batch);
            while waiting.recv_many(&mut batch, max_batch).await > 0 {
                gather(&mut waiting, &mut batch, max_batch).await;
                let (items, answers): (Vec<I>, Vec<_>) =
                    batch.drain(..).map(|w| (w.item, w.answer)).unzip();
                metrics::histogram!("boxoffice_group_commit_batch_size", "writer" => name)
                    .record(items.len() as f64);
                match write(items).await {
                    Ok(results) => {
                        for (answer, result) in answers.into_iter().zip(results) {
                            let _ = answer.send(Ok(result));
                        }
                    }
                    Err(error) => {
                        let failure = Failure {
                            detail: format!("{error:#}"),
                            transient: is_transient(&error),
                        };
                        for answer in answers {
                            let _ = answer.send(Err(failure.clone()));
                        }
                    }
                }
            }
        });
        GroupCommit { queue }
    }

    /// Stores `item` with whatever else is waiting; answers once committed.
    /// A passing fault of the store comes back as one (see
    /// [`crate::retry::is_transient`]), so callers can answer 503.
    pub async fn submit(&self, item: I) -> anyhow::Result<A> {
        let stopped = || anyhow::anyhow!("the group-commit writer has stopped");
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Waiting { item, answer })
            .await
            .map_err(|_| stopped())?;
        match answered.await.map_err(|_| stopped())? {
            Ok(result) => Ok(result),
            Err(Failure {
                detail,
                transient: true,
            }) => Err(anyhow::Error::new(Unavailable(format!(
                "the database ({detail})"
            )))),
            Err(Failure { detail, .. }) => Err(anyhow::anyhow!(detail)),
        }
    }
}

/// Lets the tasks that are ready to run take their turn, adding what they
/// submit to `batch`, until a turn brings nothing, the batch is full, or
/// [`GATHER_TURNS`] have passed.
async fn gather<T>(waiting: &mut mpsc::Receiver<T>, batch: &mut Vec<T>, max_batch: usize) {
    for _ in 0..GATHER_TURNS {
        if batch.len() >= max_batch {
            return;
        }
        tokio::task::yield_now().await;
        let before = batch.len();
        while batch.len() < max_batch {
            match waiting.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        if batch.len() == before {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn concurrent_writes_are_batched_and_each_gets_its_own_answer() {
        let writer = GroupCommit::start("test", 64, |items: Vec<u32>| async move {
            Ok(items.iter().map(|i| i * 2).collect())
        });
        let answers = futures::future::join_all((0..200).map(|i| writer.submit(i))).await;
        let answers: Vec<u32> = answers.into_iter().map(Result::unwrap).collect();
        assert_eq!(answers, (0..200).map(|i| i * 2).collect::<Vec<_>>());
    }

    /// Requests on their way to the writer when it takes a batch (here
    /// each wakes the next just before it submits) join that batch; a
    /// write alone is not held. Without the writer's turns the same
    /// requests make batches of two.
    #[tokio::test]
    async fn writes_on_their_way_join_the_batch() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let recorded = Arc::clone(&sizes);
        let writer = GroupCommit::start("test", 64, move |items: Vec<u32>| {
            recorded.lock().unwrap().push(items.len());
            async move { Ok(items) }
        });
        let (start, mut woken) = tokio::sync::oneshot::channel::<()>();
        let mut requests = Vec::new();
        for n in 0..6 {
            let (wake_next, next) = tokio::sync::oneshot::channel::<()>();
            let writer = writer.clone();
            requests.push(tokio::spawn(async move {
                woken.await.unwrap();
                let _ = wake_next.send(());
                writer.submit(n).await.unwrap()
            }));
            woken = next;
        }
        // Every request waits for its turn before the first is let go.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        start.send(()).unwrap();
        let answers: Vec<u32> = futures::future::join_all(requests)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        assert_eq!(answers, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(*sizes.lock().unwrap(), vec![6]);

        assert_eq!(writer.submit(9).await.unwrap(), 9);
        assert_eq!(*sizes.lock().unwrap(), vec![6, 1]);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_write_and_a_passing_fault_stays_one() {
        let writer = GroupCommit::start("test", 8, |_: Vec<u32>| async move {
            Err::<Vec<u32>, _>(anyhow::Error::new(crate::retry::Contention("x".into())))
        });
        let error = writer.submit(1).await.unwrap_err();
        assert!(is_transient(&error), "{error:#}");
        let writer = GroupCommit::start("test", 8, |_: Vec<u32>| async move {
            Err::<Vec<u32>, _>(anyhow::anyhow!("a constraint broke"))
        });
        let error = writer.submit(1).await.unwrap_err();
        assert!(!is_transient(&error));
    }
}
