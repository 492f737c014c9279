//! A JSON-RPC message parsed once, its payload left raw: what the HTTP hot path reads of a
//! client's request and the direct backend path of a backend's answer, before either types
//! the part it needs. Depends on nothing of the traffic path.

use std::borrow::Cow;

use rmcp::model::RequestId;
use serde::Deserialize;
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
