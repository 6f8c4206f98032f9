//! The real server over TCP on loopback: the demo answers /healthz and serves a themed page
//! for an unknown path; shutdown is graceful.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_health_and_themed_error_pages_then_shuts_down() {
    let dir = tempfile::tempdir().unwrap();
    let listener = fedhub::web::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = fedhub::config::Config::default();
    config.server.listen = addr.to_string();
    config.server.public_url = format!("http://{addr}");
    config.cookies.secure = false;
    let data = dir.path().to_path_buf();
    let demo = tokio::task::spawn_blocking(move || fedhub::demo::prepare(&data, config))
        .await
        .unwrap()
        .unwrap();
    assert!(demo.api_token.starts_with("fhk_"));
    let state = fedhub::web::AppState::new(
        demo.config,
        demo.store,
        std::sync::Arc::new(fedhub::clock::SystemClock),
    )
    .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(fedhub::web::serve(
        listener,
        state,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(5),
    ));

    let (status, body) = http_get(addr, "/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(addr, "/khong-ton-tai").await;
    assert_eq!(status, 404);
    assert!(
        body.contains("Không tìm thấy trang") && body.contains("fedhub.css"),
        "{body}"
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "stopped listening"
    );
}

#[tokio::test]
async fn a_used_port_is_named() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = taken.local_addr().unwrap();
    let err = fedhub::web::bind(addr).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&addr.to_string()) && text.contains("already in use"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_requests_in_flight_only_for_the_grace_period() {
    let store = crate::support::sqlite();
    let (state, _) = crate::support::app_state(&store);
    async fn stuck() -> &'static str {
        tokio::time::sleep(Duration::from_secs(120)).await;
        "late"
    }
    let app = fedhub::web::router_with(
        state,
        axum::Router::new().route("/stuck", axum::routing::get(stuck)),
    );
    let listener = fedhub::web::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(fedhub::web::serve_app(
        listener,
        app,
        async {
            let _ = stopped.await;
        },
        Duration::from_millis(300),
    ));
    let client = tokio::spawn(http_get(addr, "/stuck"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    // The stuck request would take two minutes; the server stops after its grace period.
    tokio::time::timeout(Duration::from_secs(20), server)
        .await
        .expect("server stopped after the grace period")
        .unwrap()
        .unwrap();
    client.abort();
}
