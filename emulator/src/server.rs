//! The listener: accepts TCP connections, speaks TLS (HTTP/1.1 or HTTP/2 by ALPN) or plain
//! HTTP for the managed identity endpoints, and routes each request by its `Host`.

use crate::identity;
use crate::response::{Body, Outcome};
use crate::state::{HostKind, Shared};
use crate::{entra, keyvault};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

/// First byte of a TLS handshake record; plain HTTP starts with a letter.
const TLS_HANDSHAKE: u8 = 0x16;

/// One accepted TCP connection, shared with the handlers of its requests.
pub(crate) struct Connection {
    pub(crate) peer: SocketAddr,
    /// False for plain HTTP, which serves the managed identity endpoints only.
    tls: bool,
    reset: Notify,
}

impl Connection {
    /// Asks the connection task to reset the TCP connection (RST) right away.
    pub(crate) fn reset(&self) {
        self.reset.notify_one();
    }
}

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, acceptor: TlsAcceptor) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                shared.stats.tcp_connection();
                // Without TCP_NODELAY, Nagle's algorithm holds the second small write of a
                // response until the client ACKs the first. Linux clients delay that ACK, so
                // the first responses on a connection arrived about 40 ms late in scripts/bench.
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::warn!(%error, %peer, "setting TCP_NODELAY failed");
                }
                tokio::spawn(connection(stream, peer, shared.clone(), acceptor.clone()));
            }
            Err(error) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    acceptor: TlsAcceptor,
) {
    // A second handle on the same socket lets the task set SO_LINGER to zero before
    // dropping the connection, which makes the kernel send RST instead of FIN.
    let (stream, socket) = match duplicate(stream) {
        Ok(pair) => pair,
        Err(error) => {
            tracing::warn!(%error, %peer, "duplicating an accepted socket failed");
            return;
        }
    };

    let mut first = [0u8; 1];
    match stream.peek(&mut first).await {
        Ok(1) => {}
        _ => return,
    }

    let connection = Arc::new(Connection {
        peer,
        tls: first[0] == TLS_HANDSHAKE,
        reset: Notify::new(),
    });
    let service = {
        let shared = shared.clone();
        let connection = connection.clone();
        service_fn(move |request| {
            let shared = shared.clone();
            let connection = connection.clone();
            async move { Ok::<_, Infallible>(dispatch(request, &shared, &connection).await) }
        })
    };
    let builder = auto::Builder::new(TokioExecutor::new());

    let served = async {
        if connection.tls {
            let tls = match acceptor.accept(stream).await {
                Ok(tls) => tls,
                Err(error) => {
                    tracing::debug!(%error, %peer, "TLS handshake failed");
                    return;
                }
            };
            let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            shared.stats.tls_connection(http2);
            if let Err(error) = builder.serve_connection(TokioIo::new(tls), service).await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        } else if let Err(error) = builder
            .http1_only()
            .serve_connection(TokioIo::new(stream), service)
            .await
        {
            tracing::debug!(%error, %peer, "plain HTTP connection ended with an error");
        }
    };

    tokio::select! {
        () = served => {}
        () = connection.reset.notified() => {
            if let Err(error) = socket2::SockRef::from(&socket).set_linger(Some(Duration::ZERO)) {
                tracing::warn!(%error, %peer, "setting SO_LINGER for a reset failed");
            }
            // Dropping the connection future and `socket` closes the last handles.
        }
    }
}

fn duplicate(stream: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let stream = stream.into_std()?;
    let socket = stream.try_clone()?;
    Ok((TcpStream::from_std(stream)?, socket))
}

/// Returns the `Host` header (or HTTP/2 `:authority`), lowercase and without a port.
fn request_host<B>(request: &Request<B>) -> String {
    let host = request
        .uri()
        .host()
        .map(str::to_string)
        .or_else(|| {
            request
                .headers()
                .get(http::header::HOST)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    strip_port(&host).to_ascii_lowercase()
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map(|end| &host[..=end]).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

async fn dispatch(
    request: Request<Incoming>,
    shared: &Shared,
    connection: &Arc<Connection>,
) -> Response<Body> {
    let _in_flight = shared.stats.enter();
    let host = request_host(&request);
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
    shared.stats.request(&host, authorization.as_deref());

    let (parts, body) = request.into_parts();
    let outcome = match shared.classify_host(&host) {
        _ if !connection.tls && !identity::is_identity_path(parts.uri.path()) => Outcome::Reset,
        HostKind::Vault { cloud } => {
            keyvault::handle(shared, connection, cloud, &host, &parts).await
        }
        HostKind::Login { cloud } => entra::handle(shared, cloud, &host, parts.clone(), body).await,
        HostKind::Other if identity::is_identity_path(parts.uri.path()) => {
            identity::handle(shared, &parts)
        }
        HostKind::Other => Outcome::Reset,
    };

    tokio::time::sleep(shared.faults.latency()).await;

    let response = match outcome {
        Outcome::Reply(response) => response,
        Outcome::Reset => {
            tracing::debug!(%host, path = parts.uri.path(), "resetting the connection");
            connection.reset();
            std::future::pending().await
        }
        Outcome::NoResponse => std::future::pending().await,
    };
    tracing::debug!(%host, method = %parts.method, path = parts.uri.path(), status = response.status().as_u16(), "answered");
    response
}
