//! Resource subscriptions at a backend that speaks only 2026-07-28, for clients that
//! subscribe the older way (`resources/subscribe`, removed in 2026-07-28): each subscribed
//! URI is one `subscriptions/listen` stream at the backend, whose updates go where a
//! handshake backend's would (the relay, then the subscribed sessions). Unsubscribing
//! drops the stream, which cancels it at the backend; so does the connection ending.
//!
//! Where this sits: beside [`super::Backend::request`], which sends subscriptions here
//! when the backend's connection has no handshake session.

use std::{collections::HashMap, sync::Mutex};

use rmcp::{
    RoleClient,
    model::{ServerNotification, SubscriptionFilter},
    service::{Peer, ServiceError},
};
use tokio::task::AbortHandle;

use super::relay::Relay;
use crate::sync::Locked;

/// The listen streams of one backend connection, by the backend's own URI.
#[derive(Default)]
pub(super) struct Listens {
    streams: Mutex<HashMap<String, AbortHandle>>,
}

impl Listens {
    /// Opens the stream for `uri`; returns once the backend acknowledged it with `uri`
    /// among what it accepted.
    pub async fn subscribe(
        &self,
        peer: &Peer<RoleClient>,
        relay: Relay,
        uri: String,
    ) -> Result<(), ServiceError> {
        let filter = SubscriptionFilter::builder()
            .resource_subscriptions([uri.clone()])
            .build();
        let mut subscription = peer.listen(filter).await?;
        let accepted = subscription
            .acknowledged()
            .resource_subscriptions
            .as_ref()
            .is_some_and(|uris| uris.contains(&uri));
        if !accepted {
            return Err(ServiceError::McpError(rmcp::ErrorData::invalid_params(
                format!("the backend did not accept a subscription to `{uri}`"),
                None,
            )));
        }
        let task = tokio::spawn(async move {
            while let Ok(Some(notification)) = subscription.next().await {
                if matches!(
                    notification,
                    ServerNotification::ResourceUpdatedNotification(_)
                ) {
                    relay.notification(notification, None).await;
                }
            }
        });
        if let Some(old) = self.lock().insert(uri, task.abort_handle()) {
            old.abort();
        }
        Ok(())
    }

    /// Drops the stream for `uri`, if any.
    pub fn unsubscribe(&self, uri: &str) {
        if let Some(stream) = self.lock().remove(uri) {
            stream.abort();
        }
    }

    /// Drops every stream (the connection is gone).
    pub fn clear(&self) {
        for (_, stream) in self.lock().drain() {
            stream.abort();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AbortHandle>> {
        self.streams.locked()
    }
}
