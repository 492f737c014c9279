//! Is the audit bucket write-once? Reads the bucket's Object Lock configuration (S3
//! `GetObjectLockConfiguration`) with a request signed like every other S3 call, so that a
//! proxy configured with `object_lock = "require"` refuses to start on a bucket where
//! segments could be overwritten or deleted. object_store has no call for it; the request
//! is signed with its public SigV4 signer and sent with the HTTP client already in the
//! build.

use object_store::aws::{AmazonS3, AwsAuthorizer};
use object_store::client::{HttpRequest, HttpRequestBody};

/// What the bucket says about Object Lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockStatus {
    pub enabled: bool,
    /// `COMPLIANCE` or `GOVERNANCE` default retention, when one is set.
    pub mode: Option<String>,
}

impl LockStatus {
    /// Write-once as SECURITY.md requires: Object Lock on, default retention in
    /// compliance mode (governance mode can be lifted by a privileged user).
    pub fn is_compliant(&self) -> bool {
        self.enabled && self.mode.as_deref() == Some("COMPLIANCE")
    }
}

/// Where to ask: the bucket's URL for `?object-lock`.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub s3: std::sync::Arc<AmazonS3>,
    pub endpoint: Option<String>,
    pub bucket: String,
    pub region: String,
}

/// Reads the bucket's Object Lock configuration.
pub async fn status(b: &Bucket) -> Result<LockStatus, String> {
    let url = match &b.endpoint {
        Some(endpoint) => format!(
            "{}/{}?object-lock",
            endpoint.trim_end_matches('/'),
            b.bucket
        ),
        None => format!(
            "https://{}.s3.{}.amazonaws.com/?object-lock",
            b.bucket, b.region
        ),
    };
    let credential =
        b.s3.credentials()
            .get_credential()
            .await
            .map_err(|e| format!("credentials: {e}"))?;
    let mut request: HttpRequest = http::Request::builder()
        .method("GET")
        .uri(&url)
        .body(HttpRequestBody::empty())
        .map_err(|e| e.to_string())?;
    AwsAuthorizer::new(&credential, "s3", &b.region)
        .try_authorize(&mut request, None)
        .map_err(|e| format!("signing: {e}"))?;
    let mut outgoing = reqwest::Client::new().get(&url);
    for (name, value) in request.headers() {
        outgoing = outgoing.header(name, value);
    }
    let response = outgoing.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response.text().await.map_err(|e| e.to_string())?;
    if status.as_u16() == 404 && body.contains("ObjectLockConfigurationNotFound") {
        return Ok(LockStatus {
            enabled: false,
            mode: None,
        });
    }
    if !status.is_success() {
        return Err(format!(
            "{status}: {}",
            body.chars().take(300).collect::<String>()
        ));
    }
    Ok(LockStatus {
        enabled: element(&body, "ObjectLockEnabled").as_deref() == Some("Enabled"),
        mode: element(&body, "Mode"),
    })
}

/// The text of the first `<name>` element (the response is a small, flat XML document).
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{name}>"))? + start;
    Some(xml[start..end].trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::element;

    #[test]
    fn reads_the_configuration_document() {
        let xml = "<?xml version=\"1.0\"?><ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Days>1</Days></DefaultRetention></Rule></ObjectLockConfiguration>";
        assert_eq!(
            element(xml, "ObjectLockEnabled").as_deref(),
            Some("Enabled")
        );
        assert_eq!(element(xml, "Mode").as_deref(), Some("COMPLIANCE"));
        assert_eq!(element(xml, "Days").as_deref(), Some("1"));
        assert_eq!(element(xml, "Missing"), None);
    }
}
