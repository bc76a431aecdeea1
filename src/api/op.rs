//! Operation handles: .NET's `IAsyncResult`, also a `std::future::Future` usable from any
//! executor (no runtime dependency: the driver thread wakes the stored waker).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};

#[derive(Default)]
struct State {
    result: Option<Result<u64>>,
    waker: Option<Waker>,
}

/// The completion side, held by whoever drives the operation.
#[derive(Default)]
pub(crate) struct Completion {
    state: Mutex<State>,
    cv: Condvar,
}

impl Completion {
    /// Store the outcome and wake every waiter.
    pub(crate) fn complete(&self, r: Result<u64>) {
        let waker = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            s.result = Some(r);
            s.waker.take()
        };
        self.cv.notify_all();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A running (or finished) send. Consumed by `end_send_file` / [`SendOperation::wait`] or by
/// awaiting it, so it cannot be ended twice.
#[must_use = "an operation's outcome is only known by ending, waiting for or awaiting it"]
pub struct SendOperation {
    conn_id: u64,
    done: Arc<Completion>,
}

impl std::fmt::Debug for SendOperation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendOperation")
            .field("conn_id", &self.conn_id)
            .field("completed", &self.is_completed())
            .finish()
    }
}

impl SendOperation {
    pub(crate) fn run_here(conn_id: u64, run: impl FnOnce(&Completion)) -> Self {
        let done = Arc::new(Completion::default());
        run(&done);
        SendOperation { conn_id, done }
    }

    pub(crate) fn spawn(
        conn_id: u64,
        run: impl FnOnce(&Completion) + Send + 'static,
    ) -> Result<Self> {
        let done = Arc::new(Completion::default());
        let d = done.clone();
        std::thread::Builder::new()
            .name(format!("xsend-tx-{conn_id}"))
            .spawn(move || run(&d))
            .map_err(|e| Error::io("spawning the send driver thread", e))?;
        Ok(SendOperation { conn_id, done })
    }

    /// The connection that started this operation.
    pub fn connection_id(&self) -> u64 {
        self.conn_id
    }

    /// True once the outcome is known.
    pub fn is_completed(&self) -> bool {
        self.done
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .result
            .is_some()
    }

    /// Block until the operation ends; its payload bytes or error.
    pub fn wait(self) -> Result<u64> {
        let mut s = self.done.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = s.result.take() {
                return r;
            }
            s = self.done.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

impl Future for SendOperation {
    type Output = Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.done.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
