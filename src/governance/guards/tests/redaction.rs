//! Result guards: redaction of nested results, result size limits, and the validators that
//! keep redaction from touching numbers that are not card numbers or SSNs.

use serde_json::json;

use super::super::rules::{is_card_number, is_us_ssn, luhn};
use super::super::*;
use super::*;

fn redacting(ids: &[&str], own: Vec<RuleConfig>) -> Guards {
    Guards::build(
        &GuardConfig {
            redact_builtin: ids.iter().map(|s| (*s).to_owned()).collect(),
            redact: own,
            ..GuardConfig::default()
        },
        &BTreeMap::new(),
    )
    .unwrap()
}

#[test]
fn redaction_reaches_every_string_of_a_nested_result() {
    let guards = redacting(
        &["card_number", "email", "us_ssn"],
        vec![rule("ticket", r"(?i)internal-[0-9]+")],
    );
    let mut result = json!({
        "content": [
            { "type": "text", "text": "Card 4111 1111 1111 1111 for order 1234567812345678, mail bob@example.com" },
            { "type": "text", "text": "see INTERNAL-4242" }
        ],
        "structuredContent": {
            "customers": [{
                "email": "alice@example.org",
                "card": "5555-5555-5555-4444",
                "notes": ["ssn 123-45-6789", "ref 4111111111111112", "ts 1735689600000"],
                "bob@example.com": 1
            }]
        },
        "isError": false
    });
    let redactions = guards.check_result("t", &mut result).unwrap();
    assert_eq!(
        result["content"][0]["text"],
        "Card [redacted:card_number] for order 1234567812345678, mail [redacted:email]"
    );
    assert_eq!(result["content"][1]["text"], "see [redacted:ticket]");
    assert_eq!(result["content"][0]["type"], "text");
    let customer = &result["structuredContent"]["customers"][0];
    assert_eq!(customer["email"], "[redacted:email]");
    assert_eq!(customer["card"], "[redacted:card_number]");
    assert_eq!(
        customer["notes"],
        json!([
            "ssn [redacted:us_ssn]",
            "ref 4111111111111112",
            "ts 1735689600000"
        ])
    );
    // Keys are field names: left as they are.
    assert_eq!(customer["bob@example.com"], 1);
    assert_eq!(result["isError"], false);
    let expected: BTreeMap<String, usize> = [
        ("card_number", 2),
        ("email", 2),
        ("us_ssn", 1),
        ("ticket", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(redactions.by_rule, expected);
    assert_eq!(redactions.total(), 6);
}

#[test]
fn nothing_is_redacted_unless_configured() {
    let guards = defaults();
    assert!(!guards.guards_results("t"));
    let original = json!({ "content": [{ "type": "text", "text": "bob@example.com 4111111111111111 123-45-6789" }] });
    let mut result = original.clone();
    assert!(guards.check_result("t", &mut result).unwrap().is_empty());
    assert_eq!(result, original);

    // Redacting cards leaves e-mail addresses.
    let cards = redacting(&["card_number"], Vec::new());
    assert!(cards.guards_results("t"));
    assert_eq!(cards.redaction_ids("t"), vec!["card_number"]);
    let mut result = original.clone();
    cards.check_result("t", &mut result).unwrap();
    assert_eq!(
        result["content"][0]["text"],
        "bob@example.com [redacted:card_number] 123-45-6789"
    );
}

#[test]
fn secrets_in_results_can_be_redacted() {
    let guards = redacting(
        &["private_key", "aws_access_key_id", "github_token"],
        Vec::new(),
    );
    let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----";
    let mut result = json!({
        "a": format!("key:\n{pem}\ndone"),
        "b": format!("id={AWS_KEY};"),
        "c": "-----BEGIN OPENSSH PRIVATE KEY-----\ncut off",
        "d": format!("ghp_{}", "a".repeat(36)),
    });
    let r = guards.check_result("t", &mut result).unwrap();
    assert_eq!(result["a"], "key:\n[redacted:private_key]\ndone");
    assert_eq!(result["b"], "id=[redacted:aws_access_key_id];");
    assert_eq!(result["c"], "[redacted:private_key]");
    assert_eq!(result["d"], "[redacted:github_token]");
    assert_eq!(r.total(), 4);
}

#[test]
fn result_size_limit_exact_boundary() {
    let result = json!({ "content": [{ "type": "text", "text": "x".repeat(100) }] });
    let len = serde_json::to_vec(&result).unwrap().len();
    let limited = |limit| {
        Guards::build(
            &GuardConfig {
                max_result_bytes: Some(limit),
                ..GuardConfig::default()
            },
            &BTreeMap::new(),
        )
        .unwrap()
    };
    assert!(limited(len).check_result("t", &mut result.clone()).is_ok());
    let blocked = limited(len - 1)
        .check_result("t", &mut result.clone())
        .unwrap_err();
    assert_eq!(
        (blocked.rule.as_str(), blocked.path.as_str()),
        (MAX_RESULT_BYTES, "")
    );
    assert!(limited(len - 1).guards_results("t"));
}

#[test]
fn card_numbers_need_issuer_length_and_luhn() {
    for card in [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555555555554444",
        "2223003122003222",
        "378282246310005",
        "3782 822463 10005",
        "6011111111111117",
        "30569309025904",
        "3530111333300000",
        "4222222222222",
    ] {
        assert!(is_card_number(card), "{card}");
    }
    for not_card in [
        "4111111111111112",  // Luhn fails
        "1234567812345678",  // no issuer starts with 1
        "1735689600000",     // a millisecond timestamp
        "0000000000000000",  // no issuer starts with 0
        "41111111111111111", // Visa has no 17-digit numbers
        "7777777777777777",  // no issuer starts with 7
    ] {
        assert!(!is_card_number(not_card), "{not_card}");
    }
    assert!(luhn("79927398713"));
    assert!(!luhn("79927398710"));

    // In text: an order id in the same shape as a card stays.
    let guards = redacting(&["card_number"], Vec::new());
    let mut result = json!("orders 4000 1234 5678 9010, 4000 1234 5678 9017; id_4111111111111111");
    let redactions = guards.check_result("t", &mut result).unwrap();
    // The first fails Luhn; the last is glued to a word, so it is an identifier.
    assert_eq!(
        result,
        "orders 4000 1234 5678 9010, [redacted:card_number]; id_4111111111111111"
    );
    assert_eq!(redactions.total(), 1);

    // A card right after other digits, or right before them, is still found.
    let mut result = json!([
        "ref 1234 4111 1111 1111 1111",
        "4111111111111111 123-45-6789"
    ]);
    guards.check_result("t", &mut result).unwrap();
    assert_eq!(
        result,
        json!([
            "ref 1234 [redacted:card_number]",
            "[redacted:card_number] 123-45-6789"
        ])
    );
}

#[test]
fn ssn_ranges() {
    assert!(is_us_ssn("123-45-6789"));
    for bad in [
        "000-12-3456",
        "666-12-3456",
        "912-34-5678",
        "123-00-4567",
        "123-45-0000",
    ] {
        assert!(!is_us_ssn(bad), "{bad}");
    }
}
