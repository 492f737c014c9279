//! Tokens and claims from an attacker: a JWKS document, a token header and a claims object
//! built from arbitrary bytes must give a key set, a principal or an error — never a panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mcp_warden::config::{AttrKind, Config, IssuerSettings};

fn issuer() -> &'static (IssuerSettings, std::collections::BTreeMap<String, AttrKind>) {
    static ISSUER: OnceLock<(IssuerSettings, std::collections::BTreeMap<String, AttrKind>)> = OnceLock::new();
    ISSUER.get_or_init(|| {
        let config = Config::from_toml_str(
            "[auth]\nattributes = { email = \"string\", level = \"long\", admin = \"bool\", groups = \"set\" }\n\
             [[auth.issuers]]\nissuer = \"https://idp\"\naudiences = [\"a\"]\njwks_file = \"k\"\n\
             roles_claim = \"realm_access.roles\"\ntenant_claim = \"org.tenant\"\nkind_claim = \"typ\"\n\
             claims = { email = \"email\", level = \"lvl\", admin = \"adm\", groups = \"grp\" }\n\
             [authz]\npolicy = \"permit(principal, action, resource);\"\n[[backends]]\nname = \"x\"\ncommand = \"x\"\n",
        )
        .expect("fuzz config");
        (config.auth.issuers[0].clone(), config.auth.attributes.clone())
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = mcp_warden::authn::KeySet::parse(text);
    let _ = jsonwebtoken::decode_header(text);
    if let Ok(claims) = serde_json::from_str::<serde_json::Value>(text) {
        let (issuer, declared) = issuer();
        let _ = mcp_warden::authn::principal_from_claims(&claims, issuer, declared);
    }
});
