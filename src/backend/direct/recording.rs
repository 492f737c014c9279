//! rmcp's HTTP client for one backend connection, wrapped to record the session it
//! negotiates (id and per-session headers) for the direct path ([`super::Endpoint`]).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures::stream::BoxStream;
use http::{HeaderName, HeaderValue};
use rmcp::{
    model::ClientJsonRpcMessage,
    transport::streamable_http_client::{
        SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
        StreamableHttpResponseLimits,
    },
};
use sse_stream::Sse;

use super::Negotiated;
use crate::sync::Locked;

/// rmcp's HTTP client for one backend, unchanged but for one thing: it remembers the
/// session id and headers of the requests rmcp sends, for [`Endpoint`].
#[derive(Clone)]
pub struct Recording {
    pub(super) inner: reqwest::Client,
    pub(super) seen: Arc<Mutex<Option<Negotiated>>>,
}

impl Recording {
    fn record(&self, session: &Option<Arc<str>>, headers: &HashMap<HeaderName, HeaderValue>) {
        let Some(session) = session else { return };
        let mut seen = self.seen.locked();
        let same = seen.as_ref().is_some_and(|s| {
            s.session == *session && s.headers.iter().all(|(n, v)| headers.get(n) == Some(v))
        });
        if !same {
            // Headers that describe one message (SEP-2243: `Mcp-Method`, `Mcp-Name`,
            // `Mcp-Param-*`) are not the session's.
            let headers = headers
                .iter()
                .filter(|(name, _)| {
                    !name.as_str().starts_with("mcp-method")
                        && !name.as_str().starts_with("mcp-name")
                        && !name.as_str().starts_with("mcp-param-")
                })
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            *seen = Some(Negotiated {
                session: session.clone(),
                headers,
            });
        }
    }
}

type HttpResult<T> = Result<T, StreamableHttpError<reqwest::Error>>;

impl StreamableHttpClient for Recording {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<StreamableHttpPostResponse> {
        self.record(&session_id, &custom_headers);
        self.inner
            .post_message(uri, message, session_id, auth_header, custom_headers)
            .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> HttpResult<StreamableHttpPostResponse> {
        self.record(&session_id, &custom_headers);
        self.inner
            .post_message_with_max_sse_event_size(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        limits: StreamableHttpResponseLimits,
    ) -> HttpResult<StreamableHttpPostResponse> {
        self.record(&session_id, &custom_headers);
        self.inner
            .post_message_with_response_limits(
                uri,
                message,
                session_id,
                auth_header,
                custom_headers,
                limits,
            )
            .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<()> {
        *self.seen.locked() = None;
        self.inner
            .delete_session(uri, session_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
    ) -> HttpResult<BoxStream<'static, Result<Sse, SseError>>> {
        self.inner
            .get_stream(uri, session_id, last_event_id, auth_header, custom_headers)
            .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        auth_header: Option<String>,
        custom_headers: HashMap<HeaderName, HeaderValue>,
        max_sse_event_size: usize,
    ) -> HttpResult<BoxStream<'static, Result<Sse, SseError>>> {
        self.inner
            .get_stream_with_max_sse_event_size(
                uri,
                session_id,
                last_event_id,
                auth_header,
                custom_headers,
                max_sse_event_size,
            )
            .await
    }
}
