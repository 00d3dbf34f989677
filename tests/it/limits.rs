//! HTTP limits: header count and size, request smuggling, idle keep-alive,
//! and many idle connections.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

fn start(extra: &str) -> (TempDir, InProcess) {
    let dir = TempDir::new("limits");
    let server = InProcess::new(&dir, extra);
    server.client().register("alice", "alice-password");
    (dir, server)
}

/// Reads until the server closes the connection; true if it did in time.
fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

#[test]
fn too_many_or_too_large_headers_get_431() {
    let (_dir, server) = start("");
    let c = server.client();
    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let res = c.raw(format!("GET /api/resource HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes());
    assert_eq!(res.status, 431);
    let big = "a".repeat(80 * 1024);
    let res =
        c.raw(format!("GET /api/resource HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes());
    assert_eq!(res.status, 431);
    // Up to the limits is fine.
    let some: String = (0..90).map(|i| format!("X-H{i}: v\r\n")).collect();
    let res = c.raw(
        format!(
            "GET /api/resource HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nConnection: close\r\n\
             {some}\r\n",
            basic("alice", "alice-password")
        )
        .as_bytes(),
    );
    assert_eq!(res.status, 200);
    c.assert_alive("alice", "alice-password");
}

#[test]
fn content_length_with_transfer_encoding_is_read_by_the_chunks_and_closed() {
    // hyper follows RFC 9112: Transfer-Encoding wins, Content-Length is
    // dropped, and the connection is closed after the answer, so a request
    // smuggled behind the body is never read.
    let (_dir, server) = start("");
    for framing in [
        "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
    ] {
        let body = r#"{"username":"smuggler","password":"smuggler-password"}"#;
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream
            .write_all(
                format!(
                    "POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     {framing}\r\n{:x}\r\n{body}\r\n0\r\n\r\n\
                     GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                    body.len()
                )
                .as_bytes(),
            )
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let res = read_response(&mut stream).unwrap();
        // By the chunks: the whole JSON (by Content-Length it would be
        // three bytes of chunk size). The second time the name is taken.
        assert!(matches!(res.status, 201 | 409), "{framing}: {}", res.text());
        assert_eq!(res.header("connection"), Some("close"), "{framing}");
        // The smuggled second request is never answered.
        assert!(closed_by_server(&mut stream, Duration::from_secs(5)));
    }
    server.client().assert_alive("alice", "alice-password");
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let (_dir, server) = start("[limits]\nheader_read_timeout = 1\n[scrypt]\nlog_n = 4\n");
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let res = read_response(&mut stream).unwrap();
    assert_eq!(res.status, 200);
    let began = Instant::now();
    assert!(closed_by_server(&mut stream, Duration::from_secs(5)));
    let idle = began.elapsed();
    assert!(idle >= Duration::from_millis(800), "{idle:?}");
}

/// Opens `n` connections that send nothing.
fn idle_connections(server: &InProcess, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect()
}

#[test]
fn many_idle_connections_do_not_stop_service() {
    // Under the connection limit: others are served at once.
    let (_dir, server) = start("");
    let idle = idle_connections(&server, 200);
    let began = Instant::now();
    assert_eq!(server.client().get("/healthz", &[]).status, 200);
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "{:?}",
        began.elapsed()
    );
    drop(idle);

    // Over it: others wait at most about header_read_timeout, while the
    // idle ones are cut off.
    let (_dir, server) =
        start("[limits]\nmax_connections = 16\nheader_read_timeout = 1\n[scrypt]\nlog_n = 4\n");
    // Half again the limit: the request waits for one round of timeouts.
    let idle = idle_connections(&server, 24);
    let began = Instant::now();
    assert_eq!(server.client().get("/healthz", &[]).status, 200);
    let waited = began.elapsed();
    assert!(waited < Duration::from_secs(6), "{waited:?}");
    drop(idle);
    server.client().assert_alive("alice", "alice-password");
}
