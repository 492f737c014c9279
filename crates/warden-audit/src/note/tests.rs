use super::*;

// The Ed25519 example of golang.org/x/mod/sumdb/note (note.go and note_test.go).
const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const PETER_SIG: &str = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
// A second signature of the same text by another key, from the same tests.
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const ENOCH_SIG: &str = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

fn peter() -> NoteVerifier {
    NoteVerifier::from_vkey(PETER_VKEY).unwrap()
}

fn signed() -> String {
    format!("{TEXT}\n{PETER_SIG}")
}

#[test]
fn go_vector_keys() {
    let signer = NoteSigner::from_skey(PETER_SKEY).unwrap();
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(signer.key_hash(), 0xc74f20a3);
    assert_eq!(signer.vkey(), PETER_VKEY);
    let verifier = peter();
    assert_eq!(verifier.name(), "PeterNeumann");
    assert_eq!(verifier.key_hash(), 0xc74f20a3);
    // Surrounding whitespace, as when read from a file, is ignored.
    assert!(NoteSigner::from_skey(&format!("  {PETER_SKEY}\n")).is_ok());
    assert!(NoteVerifier::from_vkey(&format!("{PETER_VKEY}\r\n")).is_ok());
}

#[test]
fn go_vector_signature_is_reproduced_and_opens() {
    let signer = NoteSigner::from_skey(PETER_SKEY).unwrap();
    assert_eq!(signer.sign(TEXT).unwrap(), signed());
    assert_eq!(open(&signed(), &peter()).unwrap(), TEXT);
}

#[test]
fn foreign_signatures_are_ignored() {
    let both = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    assert_eq!(open(&both, &peter()).unwrap(), TEXT);
    let enoch = NoteVerifier::from_vkey(ENOCH_VKEY).unwrap();
    assert_eq!(open(&both, &enoch).unwrap(), TEXT);
    let reversed = format!("{TEXT}\n{ENOCH_SIG}{PETER_SIG}");
    assert_eq!(open(&reversed, &peter()).unwrap(), TEXT);
    // Only a foreign signature: nothing by our key.
    assert_eq!(
        open(&format!("{TEXT}\n{ENOCH_SIG}"), &peter()),
        Err(NoteError::UnknownKey)
    );
}

#[test]
fn generate_sign_open_round_trip() {
    let (signer, skey, vkey) = NoteSigner::generate("example.com/log").unwrap();
    assert!(skey.starts_with("PRIVATE+KEY+example.com/log+"));
    assert_eq!(vkey, signer.vkey());
    let verifier = NoteVerifier::from_vkey(&vkey).unwrap();
    assert_eq!(verifier.key_hash(), signer.key_hash());
    let reloaded = NoteSigner::from_skey(&skey).unwrap();
    assert_eq!(reloaded.vkey(), vkey);

    // Texts may contain empty lines: the signatures follow the last one.
    for text in ["hello\n", "a\n\nb\n", "\n", "a\n\n", "— not a signature\n"] {
        let note = signer.sign(text).unwrap();
        assert_eq!(reloaded.sign(text).unwrap(), note, "deterministic");
        assert_eq!(open(&note, &verifier).unwrap(), text);
    }
    // Two fresh keys differ.
    let (_, other, _) = NoteSigner::generate("example.com/log").unwrap();
    assert_ne!(other, skey);
}

#[test]
fn generate_rejects_bad_names() {
    for name in ["", "a+b", "a b", "tab\there", "nl\n", "nbsp\u{a0}x"] {
        assert!(
            matches!(NoteSigner::generate(name), Err(NoteError::InvalidName(_))),
            "{name:?}"
        );
    }
}

#[test]
fn tampered_text_or_signature_is_rejected() {
    let tampered = signed().replace("cryptography", "cryptographY");
    assert_eq!(open(&tampered, &peter()), Err(NoteError::BadSignature));

    // Change a character of the signature (after the key ID) to another base64 one.
    let at = TEXT.len() + 1 + "— PeterNeumann ".len() + 20;
    let mut note = signed().into_bytes();
    note[at] = if note[at] == b'A' { b'B' } else { b'A' };
    let note = String::from_utf8(note).unwrap();
    assert_eq!(open(&note, &peter()), Err(NoteError::BadSignature));

    // A valid signature line by our key next to a bad one: the whole note fails.
    let bad_line = format!(
        "— PeterNeumann {}\n",
        B64.encode([0xc7, 0x4f, 0x20, 0xa3, 1, 2, 3])
    );
    assert_eq!(
        open(&format!("{TEXT}\n{PETER_SIG}{bad_line}"), &peter()),
        Err(NoteError::BadSignature)
    );
}

#[test]
fn same_name_other_key_is_unknown() {
    let (impostor, _, _) = NoteSigner::generate("PeterNeumann").unwrap();
    assert_ne!(impostor.key_hash(), peter().key_hash());
    let note = impostor.sign(TEXT).unwrap();
    assert_eq!(open(&note, &peter()), Err(NoteError::UnknownKey));
}

#[test]
fn same_name_and_key_id_but_wrong_key_is_bad_signature() {
    let (other, _, _) = NoteSigner::generate("PeterNeumann").unwrap();
    let note = other.sign(TEXT).unwrap();
    // Re-label the other key's signature with Peter's key ID.
    let b64 = note.rsplit(' ').next().unwrap().trim_end();
    let mut raw = B64.decode(b64).unwrap();
    raw[..4].copy_from_slice(&0xc74f20a3u32.to_be_bytes());
    let forged = format!("{TEXT}\n— PeterNeumann {}\n", B64.encode(&raw));
    assert_eq!(open(&forged, &peter()), Err(NoteError::BadSignature));
}

#[test]
fn malformed_notes_are_rejected() {
    let peter = peter();
    let no_newline = &PETER_SIG[..PETER_SIG.len() - 1];
    for note in [
        TEXT.to_owned(),                                      // no signatures
        format!("{TEXT}\n"),                                  // blank line, no signatures
        format!("{TEXT}{PETER_SIG}"),                         // no blank line
        format!("{TEXT}\n{no_newline}"),                      // last line unterminated
        format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),     // garbage after the signatures
        format!("{TEXT}\n{PETER_SIG}\n"),                     // trailing blank line
        format!("\u{1}{TEXT}\n{PETER_SIG}"),                  // control character
        format!("{TEXT}\n{}", PETER_SIG.replace("— ", "- ")), // hyphen, not em dash
        format!(
            "{TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        ),
        format!("{TEXT}\n— PeterNeumann !!!!\n"), // not base64
        format!("{TEXT}\n— PeterNeumann AAAA\n"), // shorter than a key ID + 1
        format!("{TEXT}\n{}", PETER_SIG.repeat(101)), // too many signatures
    ] {
        assert!(
            matches!(open(&note, &peter), Err(NoteError::MalformedNote(_))),
            "{note:?}"
        );
    }
}

#[test]
fn signing_checks_the_text() {
    let signer = NoteSigner::from_skey(PETER_SKEY).unwrap();
    assert!(matches!(
        signer.sign("no final newline"),
        Err(NoteError::MalformedNote(_))
    ));
    assert!(matches!(signer.sign(""), Err(NoteError::MalformedNote(_))));
    assert!(matches!(
        signer.sign("tab\there\n"),
        Err(NoteError::MalformedNote(_))
    ));
    assert!(matches!(
        signer.sign("cr\r\n"),
        Err(NoteError::MalformedNote(_))
    ));
}

#[test]
fn malformed_keys_are_rejected() {
    let bad_vkeys = [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", // wrong key ID
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", // upper case
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+!!!!",
        // From the Go tests: wrong key length, and an unknown algorithm byte,
        // each with a key ID adjusted to match.
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ];
    for vkey in bad_vkeys {
        assert!(NoteVerifier::from_vkey(vkey).is_err(), "{vkey:?}");
    }
    assert_eq!(
        NoteVerifier::from_vkey(bad_vkeys[3]).unwrap_err(),
        NoteError::KeyHashMismatch
    );
    // Every proper substring and every single-byte change of the Go keys fails.
    for key in [PETER_VKEY, PETER_SKEY] {
        let parse = |k: &str| {
            if key == PETER_VKEY {
                NoteVerifier::from_vkey(k).map(|_| ())
            } else {
                NoteSigner::from_skey(k).map(|_| ())
            }
        };
        for i in 0..key.len() {
            for j in i + 1..=key.len() {
                if (i, j) != (0, key.len()) {
                    assert!(parse(&key[i..j]).is_err(), "{:?}", &key[i..j]);
                }
            }
            let mut b = key.as_bytes().to_vec();
            b[i] += 1;
            assert!(parse(std::str::from_utf8(&b).unwrap()).is_err());
        }
    }
    // A verifier key is not a signer key and vice versa.
    assert!(NoteSigner::from_skey(PETER_VKEY).is_err());
    assert!(NoteVerifier::from_vkey(PETER_SKEY).is_err());
}

fn checkpoint() -> Checkpoint {
    Checkpoint {
        origin: "example.com/behind-the-sofa".to_owned(),
        size: 20852163,
        root: B64
            .decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
            .unwrap()
            .try_into()
            .unwrap(),
        extensions: vec![],
    }
}

#[test]
fn checkpoint_round_trip() {
    let cp = checkpoint();
    let text =
        "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
    assert_eq!(cp.to_text(), text);
    assert_eq!(Checkpoint::parse(text).unwrap(), cp);

    let mut with_ext = cp.clone();
    with_ext.extensions = vec!["ext one".to_owned(), "two".to_owned()];
    assert_eq!(Checkpoint::parse(&with_ext.to_text()).unwrap(), with_ext);

    let empty = Checkpoint {
        size: 0,
        root: [0; 32],
        ..cp
    };
    assert_eq!(Checkpoint::parse(&empty.to_text()).unwrap(), empty);
    let max = Checkpoint {
        size: u64::MAX,
        ..empty
    };
    assert_eq!(Checkpoint::parse(&max.to_text()).unwrap(), max);
}

#[test]
fn signed_checkpoint_round_trip() {
    let (signer, _, vkey) = NoteSigner::generate("example.com/log").unwrap();
    let cp = Checkpoint {
        origin: "example.com/log".to_owned(),
        ..checkpoint()
    };
    let note = signer.sign(&cp.to_text()).unwrap();
    let text = open(&note, &NoteVerifier::from_vkey(&vkey).unwrap()).unwrap();
    assert_eq!(Checkpoint::parse(&text).unwrap(), cp);
}

#[test]
fn checkpoint_parse_is_strict() {
    let root = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";
    let short_root = B64.encode([7u8; 31]);
    let long_root = B64.encode([7u8; 33]);
    let bad = [
        format!("o\n01\n{root}\n"),
        format!("o\n00\n{root}\n"),
        format!("o\n-1\n{root}\n"),
        format!("o\n+1\n{root}\n"),
        format!("o\n 1\n{root}\n"),
        format!("o\n1 \n{root}\n"),
        format!("o\n\n{root}\n"),
        format!("o\n0x10\n{root}\n"),
        format!("o\n18446744073709551616\n{root}\n"), // u64::MAX + 1
        format!("o\n1\n{short_root}\n"),
        format!("o\n1\n{long_root}\n"),
        "o\n1\nnot base64\n".to_owned(),
        format!("o\n1\n{}\n", root.trim_end_matches('=')), // unpadded
        format!("o\n1\n{root}"),                           // no final newline
        format!("\n1\n{root}\n"),                          // empty origin
        format!("o\n1\n{root}\n\n"),                       // empty extension line
        format!("o\n1\n{root}\next\n\n"),
        "o\n1\n".to_owned(), // missing root
        "o\n".to_owned(),
        String::new(),
    ];
    for text in bad {
        assert!(
            matches!(
                Checkpoint::parse(&text),
                Err(NoteError::MalformedCheckpoint(_))
            ),
            "{text:?}"
        );
    }
    assert_eq!(
        Checkpoint::parse(&format!("o\n0\n{root}\n")).unwrap().size,
        0
    );
    assert_eq!(
        Checkpoint::parse(&format!("o\n10\n{root}\n")).unwrap().size,
        10
    );
}
