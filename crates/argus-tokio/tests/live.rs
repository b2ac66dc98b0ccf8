//! The live suite (`argus_tests::suite`) with the clients on tokio's
//! current-thread runtime; the reference server runs on a runtime of its own.

use std::future::Future;
use std::pin::Pin;

fn block_on(test: Pin<Box<dyn Future<Output = ()> + '_>>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(test);
}

argus_tests::live_suite!(argus_tokio::Tokio, block_on);
