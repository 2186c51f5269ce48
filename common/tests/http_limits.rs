//! `common::http::serve` enforces its limits on real sockets: a slow client loses its connection,
//! a stuck handler gets the timeout problem, connections beyond the cap wait their turn, and a
//! stop still lets the request in flight finish.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, routing::get};
use common::http::{Limits, serve};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
    task::JoinHandle,
    time::Instant,
};
use tokio_util::sync::CancellationToken;

/// How long a test waits for something that should happen; generous for a loaded machine.
const WAIT: Duration = Duration::from_secs(10);

struct Server {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

async fn start(router: Router, limits: Limits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(serve(listener, router, limits, stop.clone()));
    Server { addr, stop, task }
}

fn ok_router() -> Router {
    Router::new().route("/", get(|| async { "ok" }))
}

/// One response as read off the socket: status, lower-cased head, body.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends `GET path` on `stream` (kept alive) and reads one answer, framed by `content-length`.
async fn get_on(stream: &mut TcpStream, path: &str) -> Answer {
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0; 1024];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed before the answer's head: {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap().to_lowercase();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .expect("a content-length");
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let mut chunk = [0; 1024];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    Answer { status, head, body: String::from_utf8(body).unwrap() }
}

async fn fetch(addr: SocketAddr, path: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    get_on(&mut stream, path).await
}

/// Reads until the peer closes (`Ok(0)`) or resets the connection.
async fn until_closed(stream: &mut (impl AsyncReadExt + Unpin)) {
    let mut buf = [0; 256];
    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
}

#[tokio::test]
async fn a_client_sending_its_headers_a_byte_a_second_is_disconnected_after_the_header_timeout() {
    let limits = Limits { header_read_timeout: Duration::from_secs(2), ..Limits::default() };
    let server = start(ok_router(), limits).await;

    let started = Instant::now();
    let (mut read, mut write) = TcpStream::connect(server.addr).await.unwrap().into_split();
    let trickle = tokio::spawn(async move {
        // The slowloris: a byte a second, never the blank line that ends the headers.
        for byte in b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: aaaaaaaaaaaaaaaa" {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });

    let meanwhile = fetch(server.addr, "/").await;
    assert_eq!((meanwhile.status, meanwhile.body.as_str()), (200, "ok"), "another connection is served meanwhile");

    tokio::time::timeout(Duration::from_secs(6), until_closed(&mut read))
        .await
        .expect("the server closed the slow connection within 6 s");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_secs(2), "closed after {elapsed:?}, before the header timeout");
    trickle.abort();
}

#[tokio::test]
async fn a_handler_slower_than_the_request_timeout_answers_the_timeout_problem() {
    let router = Router::new().route("/stuck", get(std::future::pending::<&'static str>));
    let limits = Limits { request_timeout: Duration::from_secs(1), ..Limits::default() };
    let server = start(router, limits).await;

    let started = Instant::now();
    let answer = tokio::time::timeout(WAIT, fetch(server.addr, "/stuck")).await.expect("an answer");

    assert!(started.elapsed() >= Duration::from_secs(1), "answered before the timeout: {answer:?}");
    assert_eq!(answer.status, 503, "{answer:?}");
    assert!(answer.head.contains("content-type: application/problem+json"), "{}", answer.head);
    let problem: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(problem["code"], "REQUEST_TIMEOUT");
    assert_eq!(problem["status"], 503);
}

#[tokio::test]
async fn beyond_the_connection_cap_a_client_waits_until_a_connection_closes() {
    let limits = Limits { max_connections: 2, ..Limits::default() };
    let server = start(ok_router(), limits).await;
    // Two kept-alive connections, each answered once, so both hold their permit.
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(get_on(&mut first, "/").await.status, 200);
    let mut second = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(get_on(&mut second, "/").await.status, 200);

    // The third connects (the kernel's backlog takes it) but is not served...
    let mut third = tokio::spawn(fetch(server.addr, "/"));
    let early = tokio::time::timeout(Duration::from_millis(500), &mut third).await;
    assert!(early.is_err(), "a third connection was served beyond the cap of 2: {early:?}");

    // ...until one of the first two goes.
    drop(first);
    let answer = tokio::time::timeout(WAIT, third).await.expect("served once a connection closed").unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok"));
    assert_eq!(get_on(&mut second, "/").await.status, 200, "the other connection is still served");
}

#[tokio::test]
async fn a_stop_lets_the_request_in_flight_finish_and_accepts_no_new_connection() {
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (e, r) = (entered.clone(), release.clone());
    let router = Router::new().route(
        "/slow",
        get(move || async move {
            e.notify_one();
            r.notified().await;
            "finished"
        }),
    );
    let server = start(router, Limits::default()).await;

    let in_flight = tokio::spawn(fetch(server.addr, "/slow"));
    tokio::time::timeout(WAIT, entered.notified()).await.expect("the handler started");
    server.stop.cancel();

    // The listener goes once the server stops accepting.
    let refused =
        common::harness::eventually(WAIT, || async { TcpStream::connect(server.addr).await.is_err().then_some(()) })
            .await;
    assert!(refused.is_some(), "new connections are still accepted after the stop");
    assert!(!in_flight.is_finished(), "the request in flight was cut off");

    release.notify_one();
    let answer = tokio::time::timeout(WAIT, in_flight).await.expect("answered after the stop").unwrap();
    assert_eq!((answer.status, answer.body.as_str()), (200, "finished"));
    tokio::time::timeout(WAIT, server.task).await.expect("serve returns once drained").unwrap().unwrap();
}
