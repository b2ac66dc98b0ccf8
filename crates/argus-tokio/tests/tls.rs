//! `wss://` against the reference server with a certificate made in the test.

use argus_server::{ServerConfig, TlsConfig};
use argus_tests::live::*;
use argus_tokio::{
    ConnectError, ConnectionState, DataType, GiveUpReason, MessageKind, OpenError,
    SubscriptionConfig, WebSocketClient,
};

fn self_signed() -> (TlsConfig, rcgen::Certificate) {
    let key =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("a certificate");
    let tls = TlsConfig {
        cert_chain_pem: key.cert.pem().into_bytes(),
        private_key_pem: key.signing_key.serialize_pem().into_bytes(),
    };
    (tls, key.cert)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_with_a_trusted_custom_root_gets_data() {
    let (tls, cert) = self_signed();
    let server = start_server(ServerConfig {
        tls: Some(tls),
        api_keys: vec!["tls-key".into()],
        ..server_config()
    })
    .await;
    assert!(
        server.url().starts_with("wss://127.0.0.1:"),
        "{}",
        server.url()
    );
    let config = argus_tokio::ConnectionConfig {
        api_key: Some("tls-key".into()),
        ..client_config(&server.url())
    };
    let client = WebSocketClient::builder(config)
        .builtin_roots(false)
        .add_root_certificate(cert.der().clone())
        .build()
        .unwrap();
    let seen = Recorder::default();
    client.add_message_handler(MessageKind::Price, seen.handler());
    within("connect", client.connect()).await.unwrap();
    within(
        "subscribe",
        client.subscribe("tls", SubscriptionConfig::new(["AAPL"], [DataType::Price])),
    )
    .await
    .unwrap();
    seen.wait_for(10).await;
    assert_consecutive(&seen.seqs(), 1, "over TLS");

    // The same root as PEM works too.
    let client = WebSocketClient::builder(argus_tokio::ConnectionConfig {
        api_key: Some("tls-key".into()),
        ..client_config(&server.url())
    })
    .builtin_roots(false)
    .add_root_certificates_pem(cert.pem())
    .build()
    .unwrap();
    within("connect", client.connect()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_fatal_without_retries() {
    let (tls, _cert) = self_signed();
    let server = start_server(ServerConfig {
        tls: Some(tls),
        ..server_config()
    })
    .await;
    // Trusts the Mozilla roots only (or nothing, without the feature).
    let client = WebSocketClient::new(client_config(&server.url())).unwrap();
    let error = within("the refusal", client.connect()).await.unwrap_err();
    println!("{error}");
    assert!(
        matches!(
            error,
            ConnectError::GaveUp(GiveUpReason::Fatal(OpenError::Certificate(_)))
        ),
        "{error:?}"
    );
    assert!(error.is_fatal());
    assert_eq!(client.state(), ConnectionState::Error);
    assert_eq!(client.stats().await.connection.connect_attempts, 1);
    assert_eq!(server.stats().connection_attempts, 1);
}
