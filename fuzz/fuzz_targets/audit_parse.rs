//! Arbitrary bytes as each thing an auditor's tools parse from a store or a file: a segment
//! line (a record), a signed note, a checkpoint body, a proof file and a saved state. Never a
//! panic; a checkpoint that parses prints back to the same text; no note or proof the fuzzer
//! wrote is accepted under a key it does not hold.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcp_warden::audit::note::{self, Checkpoint};
use mcp_warden::audit::proof::{ProofFile, check_proof};
use mcp_warden::audit::verify::State;
use mcp_warden::audit::{NoteSigner, NoteVerifier, Record};

fn key() -> &'static NoteVerifier {
    static KEY: OnceLock<NoteVerifier> = OnceLock::new();
    KEY.get_or_init(|| {
        let (_, _, vkey) = NoteSigner::generate("fuzz.example/audit").unwrap();
        NoteVerifier::from_vkey(&vkey).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok((_, record)) = Record::parse_canonical(data) {
        // What parses as canonical is a record of this version.
        assert_eq!(record.v, mcp_warden::audit::record::VERSION);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert!(
        note::open(text, key()).is_err(),
        "a note signed by nobody verified"
    );
    if let Ok(checkpoint) = Checkpoint::parse(text) {
        assert_eq!(checkpoint.to_text(), text);
    }
    if let Ok(file) = serde_json::from_str::<ProofFile>(text) {
        assert!(
            check_proof(&file, key()).is_err(),
            "a proof signed by nobody verified"
        );
    }
    let _ = serde_json::from_str::<State>(text);
});
