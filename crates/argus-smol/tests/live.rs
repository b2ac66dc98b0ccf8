//! The live suite (`argus_tests::suite`) with the clients on smol; the
//! reference server runs on a tokio runtime of its own.

use std::future::Future;
use std::pin::Pin;

fn block_on(test: Pin<Box<dyn Future<Output = ()> + '_>>) {
    smol::block_on(test);
}

argus_tests::live_suite!(argus_smol::Smol, block_on);
