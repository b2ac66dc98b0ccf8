//! The live suite (`argus_tests::suite`) with the clients on async-std; the
//! reference server runs on a tokio runtime of its own.

use std::future::Future;
use std::pin::Pin;

fn block_on(test: Pin<Box<dyn Future<Output = ()> + '_>>) {
    async_std::task::block_on(test);
}

argus_tests::live_suite!(argus_async_std::AsyncStd, block_on);
