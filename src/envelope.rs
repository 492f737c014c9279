//! A JSON-RPC message parsed once, its payload left raw: what the HTTP hot path reads of a
//! client's request and the direct backend path of a backend's answer, before either types
//! the part it needs; and [`to_vec`], the bytes of every message those paths write.
//! Depends on nothing of the traffic path.

use std::borrow::Cow;

use rmcp::model::RequestId;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The envelope of one JSON-RPC message; `params`, `result` and `error` stay raw JSON.
#[derive(Deserialize)]
pub(crate) struct Envelope<'a> {
    #[serde(borrow, default)]
    pub jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub method: Option<Cow<'a, str>>,
    #[serde(default)]
    pub id: Option<RequestId>,
    #[serde(borrow, default)]
    pub params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub error: Option<&'a RawValue>,
}

impl<'a> Envelope<'a> {
    /// The message in `bytes`, if it is one JSON-RPC object.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The bytes of a message the proxy writes (an answer to a client, a call to a backend):
/// exactly what `serde_json::to_vec` writes, with strings scanned for escapes 16 bytes at
/// a time instead of one (a 64 KiB tool result is most of a call's serializing). Only
/// for types whose serialization goes through serde's data model alone: serde_json's
/// `RawValue` would come out as an object.
pub(crate) fn to_vec<T: Serialize + ?Sized>(message: &T) -> Result<Vec<u8>, sonic_rs::Error> {
    sonic_rs::to_vec(message)
}

#[cfg(test)]
mod tests;
