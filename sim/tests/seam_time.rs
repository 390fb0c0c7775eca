//! The seam's timers in the simulator (`cluster::io::runtime`): a timeout that is no longer
//! waited for wakes nobody. madsim cannot take a timer back, so the timeout of every answered
//! call still fires at its deadline; were the waiting task woken then, every session and
//! instance would be polled once more per call, for nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use cluster::io::runtime;
use tokio::sync::oneshot;

/// Counts how often the future it wraps is polled.
struct CountPolls<F> {
    polls: Arc<AtomicUsize>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for CountPolls<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.inner.as_mut().poll(cx)
    }
}

/// A task answers within its timeout, then waits on something else: when the timeout's
/// deadline passes, it is not polled. And a timeout that is still waited for does wake its task.
#[madsim::test]
async fn an_answered_timeout_does_not_wake_its_task_at_its_deadline() {
    let polls = Arc::new(AtomicUsize::new(0));
    let (done, wait) = oneshot::channel::<()>();
    let task = runtime::spawn(CountPolls {
        polls: Arc::clone(&polls),
        inner: Box::pin(async move {
            // The guarded future is pending at first, so the timeout's own timer is set.
            let answered = runtime::timeout(
                Duration::from_secs(5),
                runtime::sleep(Duration::from_millis(5)),
            )
            .await;
            assert!(answered.is_ok());
            wait.await.expect("the test says when");
        }),
    });
    runtime::sleep(Duration::from_millis(100)).await;
    let before = polls.load(Ordering::Relaxed);
    // Well past the 5 s deadline of the answered timeout.
    runtime::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        polls.load(Ordering::Relaxed),
        before,
        "the task was woken when its answered timeout's deadline passed"
    );
    done.send(()).expect("the task waits");
    task.await.expect("the task ends");

    let fired = runtime::timeout(Duration::from_secs(1), std::future::pending::<()>()).await;
    assert!(fired.is_err(), "a timeout still waited for fires");
}
