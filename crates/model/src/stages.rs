//! Where one request's time went: while a caller runs work inside [`recorded`], every
//! backend step the model takes for it (a MySQL unit of work, a Redis call, a wait for a
//! coalesced batch) notes its name and duration, so a slow request can be logged with its
//! parts. Outside [`recorded`] noting costs one task-local lookup and records nothing.

use std::cell::RefCell;
use std::future::Future;
use std::time::Duration;

tokio::task_local! {
    static STEPS: RefCell<Vec<Step>>;
}

/// One backend step of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// What ran: `mysql master`, `redis unread`, `batch store_single` ...
    pub what: &'static str,
    /// The instance or path, when `what` alone does not say (empty otherwise).
    pub of: &'static str,
    /// How long it took, queue waits included.
    pub took: Duration,
}

/// Runs `work`, returning its output and the backend steps it took, in order.
pub async fn recorded<F: Future>(work: F) -> (F::Output, Vec<Step>) {
    STEPS
        .scope(RefCell::new(Vec::new()), async move {
            let out = work.await;
            let steps = STEPS.with(|s| std::mem::take(&mut *s.borrow_mut()));
            (out, steps)
        })
        .await
}

/// Notes a step of the request being recorded (nothing when none is).
pub(crate) fn note(what: &'static str, of: &'static str, took: Duration) {
    let _ = STEPS.try_with(|s| s.borrow_mut().push(Step { what, of, took }));
}

/// `steps` as one log field: `mysql master 1.20ms, redis unread 0.31ms`.
pub fn describe(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| {
            let ms = s.took.as_secs_f64() * 1e3;
            if s.of.is_empty() {
                format!("{} {ms:.2}ms", s.what)
            } else {
                format!("{} {} {ms:.2}ms", s.what, s.of)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn steps_are_recorded_inside_only() {
        note("mysql", "master", Duration::from_millis(1));
        let ((), steps) = recorded(async {
            note("mysql", "master", Duration::from_millis(2));
            note("redis", "unread", Duration::from_micros(500));
        })
        .await;
        assert_eq!(describe(&steps), "mysql master 2.00ms, redis unread 0.50ms");
    }
}
