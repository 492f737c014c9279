//! The HTTP exchanges of the direct path (see [`super`]): a POST or a resuming GET to one
//! backend, its status, whether it streams, and its body as chunks.
//!
//! `http://` backends are called on hyper's pooled client itself: reqwest's redirect and
//! retry layers parse the URL twice per request and cost a fifth of what the proxy spends
//! on a call's backend hop. `https://` backends keep reqwest (its TLS and same-origin
//! redirects). A redirect answered on the plain path is not followed here: the call goes
//! through rmcp's client, which follows what the backend's policy allows.

use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use http::{HeaderMap, Method, StatusCode, Uri, header};
use http_body_util::{BodyDataStream, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

/// How one backend is reached.
#[derive(Clone)]
pub(super) enum Wire {
    Plain {
        /// Boxed: hyper's client is ten times the size of reqwest's handle.
        client: Box<Client<HttpConnector, Full<Bytes>>>,
        uri: Uri,
    },
    Tls {
        client: reqwest::Client,
        /// Parsed once (each request would parse it again).
        url: reqwest::Url,
    },
}

/// A backend's answer, its body not yet read.
pub(super) struct Answer {
    pub status: StatusCode,
    /// `text/event-stream`: the call's messages, then its answer.
    pub sse: bool,
    pub content_length: Option<u64>,
    pub body: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

impl Wire {
    /// `client` is the backend connection's reqwest client (TLS); `keep_alive` whether
    /// the plain client keeps idle connections, as that one does (closed after 4 s,
    /// before the 5 s keep-alive of common servers).
    pub fn new(client: reqwest::Client, url: &str, keep_alive: bool) -> Option<Wire> {
        let parsed = reqwest::Url::parse(url).ok()?;
        if parsed.scheme() == "http" {
            let uri = url.parse::<Uri>().ok()?;
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            let client = Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(4))
                .pool_max_idle_per_host(if keep_alive { usize::MAX } else { 0 })
                .build(connector);
            return Some(Wire::Plain {
                client: Box::new(client),
                uri,
            });
        }
        Some(Wire::Tls {
            client,
            url: parsed,
        })
    }

    /// Sends one request; the body is read by the caller.
    pub async fn send(
        &self,
        method: Method,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Result<Answer, String> {
        match self {
            Wire::Plain { client, uri } => {
                let mut request = http::Request::new(Full::new(Bytes::from(body)));
                *request.method_mut() = method;
                *request.uri_mut() = uri.clone();
                *request.headers_mut() = headers;
                let response = client.request(request).await.map_err(|e| e.to_string())?;
                let (parts, body) = response.into_parts();
                Ok(Answer::new(
                    parts.status,
                    &parts.headers,
                    BodyDataStream::new(body)
                        .map_err(std::io::Error::other)
                        .boxed(),
                ))
            }
            Wire::Tls { client, url } => {
                let response = client
                    .request(method, url.clone())
                    .headers(headers)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let (status, headers) = (response.status(), response.headers().clone());
                Ok(Answer::new(
                    status,
                    &headers,
                    response
                        .bytes_stream()
                        .map_err(std::io::Error::other)
                        .boxed(),
                ))
            }
        }
    }
}

impl Answer {
    fn new(
        status: StatusCode,
        headers: &HeaderMap,
        body: BoxStream<'static, Result<Bytes, std::io::Error>>,
    ) -> Answer {
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        Answer {
            status,
            sse: text(header::CONTENT_TYPE).is_some_and(|v| v.starts_with("text/event-stream")),
            content_length: text(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
            body,
        }
    }
}
