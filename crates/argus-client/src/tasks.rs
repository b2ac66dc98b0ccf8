//! The client's two tasks: the connection task (the [`Driver`](crate::driver::Driver))
//! and the handler task, which runs the handlers that do not run inline.

use std::collections::VecDeque;
use std::sync::Arc;

use tracing::Instrument;

use crate::runtime::Runtime;
use crate::shared::Shared;
use crate::transport::redact_url;

/// The handler task: runs the handlers that do not run inline (async
/// handlers, and every handler under a lossy policy) behind the handler
/// queue, one event at a time, in order.
async fn run_handlers(shared: Arc<Shared>) {
    let mut batch = VecDeque::new();
    while std::future::poll_fn(|cx| shared.handler_queue.poll_take(cx, &mut batch))
        .await
        .is_some()
    {
        let snapshot = shared.handlers.snapshot();
        for event in batch.drain(..) {
            shared.handlers.dispatch_queued(&snapshot, event).await;
        }
    }
    tracing::debug!("handler task ended");
}

/// Spawns the client's two tasks on `R`, under one tracing span.
pub(crate) fn spawn_tasks<R: Runtime>(
    url: &str,
    shared: Arc<Shared>,
    driver: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let span = tracing::debug_span!("argus", url = %redact_url(url));
    R::spawn(run_handlers(shared).instrument(span.clone()));
    R::spawn(driver.instrument(span));
}
