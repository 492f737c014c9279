//! Incoming JSON-RPC messages, as a client would send them to the proxy: parsing must never
//! panic, and whatever parses must serialize again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rmcp::model::ClientJsonRpcMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = serde_json::from_slice::<ClientJsonRpcMessage>(data) {
        let _ = serde_json::to_vec(&message).expect("a parsed message serializes");
    }
});
