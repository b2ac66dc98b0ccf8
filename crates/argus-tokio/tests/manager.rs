//! The manager over real clients: many named clients against one reference
//! server, their stats in one call, and one call to close them all.

use argus_tests::live::{Recorder, client_config, server_config, start_server, within};
use argus_tokio::{ConnectionState, DataType, SubscriptionConfig, WebSocketClientManager};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_stats_and_close_all() {
    let server = start_server(server_config()).await;
    let manager = WebSocketClientManager::new();
    let recorders: Vec<Recorder> = (0..3).map(|_| Recorder::default()).collect();
    for (i, recorder) in recorders.iter().enumerate() {
        let client = manager
            .create_client(format!("client_{i}"), client_config(&server.url()))
            .unwrap();
        client.add_message_handler(DataType::Price, recorder.handler());
        within("connect", client.connect()).await.unwrap();
        let sub = SubscriptionConfig::new(["AAPL"], [DataType::Price]);
        within("subscribe", client.subscribe(format!("sub_{i}"), sub))
            .await
            .unwrap();
    }
    for recorder in &recorders {
        recorder.wait_for(3).await;
    }
    assert!(matches!(
        manager.create_client("client_0", client_config(&server.url())),
        Err(argus_tokio::ManagerError::DuplicateName(_))
    ));

    let stats = manager.get_all_stats().await;
    assert_eq!(
        stats.keys().collect::<Vec<_>>(),
        ["client_0", "client_1", "client_2"]
    );
    for s in stats.values() {
        assert_eq!(s.connection.state, ConnectionState::Connected);
        assert_eq!(s.connection.subscriptions_count, 1);
        assert!(s.connection.data_messages >= 3, "{s:?}");
    }

    let kept = manager.get("client_1").unwrap();
    manager.close_all().await;
    assert!(manager.is_empty());
    assert_eq!(kept.state(), ConnectionState::Disconnected);
    server.shutdown().await;
}
