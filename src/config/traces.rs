//! `[tracing]`: OpenTelemetry trace export over OTLP/HTTP and whose W3C `traceparent` the
//! proxy continues. Export needs a build with the `otel` feature; a file that asks for it
//! from a build without is refused, with the reason, rather than silently not traced.

use serde::Deserialize;

/// What the operator wrote.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingSection {
    /// The OTLP/HTTP collector's base URL (`/v1/traces` is appended), e.g.
    /// `http://otel-collector:4318`; default: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` from the environment, else no export.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans; default `OTEL_SERVICE_NAME`, else
    /// `mcp-warden`.
    pub service_name: Option<String>,
    /// The share of new traces sampled, 0 to 1 (default 1). A continued trace follows its
    /// parent's decision.
    pub sample_ratio: Option<f64>,
    /// Peers (addresses or CIDRs) whose `traceparent` header is continued; anyone else's
    /// is ignored and their request starts a trace of its own. Default none.
    pub trust_traceparent_from: Option<Vec<String>>,
}

/// `[tracing]` validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TracingSettings {
    /// The collector's base URL, when the file names one.
    pub otlp_endpoint: Option<String>,
    pub service_name: Option<String>,
    pub sample_ratio: f64,
    pub trust_traceparent_from: Vec<ipnet::IpNet>,
}

/// Whether this build can export traces (the `otel` feature).
pub const EXPORT_BUILT: bool = cfg!(feature = "otel");

pub(super) fn validate(
    section: Option<&TracingSection>,
    issues: &mut super::validate::Issues,
) -> TracingSettings {
    let Some(s) = section else {
        return TracingSettings {
            sample_ratio: 1.0,
            ..TracingSettings::default()
        };
    };
    if !EXPORT_BUILT && (s.otlp_endpoint.is_some() || s.trust_traceparent_from.is_some()) {
        issues.push(
            "tracing",
            "this build has no OpenTelemetry export: build with `--features otel` (the container image has it)",
        );
    }
    if let Some(url) = &s.otlp_endpoint {
        match url::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => issues.push(
                "tracing.otlp_endpoint",
                format!("`{url}` is not an http(s) URL such as `http://otel-collector:4318`"),
            ),
        }
    }
    let sample_ratio = s.sample_ratio.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample_ratio) {
        issues.push("tracing.sample_ratio", "must be between 0 and 1");
    }
    if s.service_name.as_deref().is_some_and(str::is_empty) {
        issues.push("tracing.service_name", "must not be empty");
    }
    let trust_traceparent_from = s
        .trust_traceparent_from
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, net)| {
            let parsed = super::validate::parse_net(net);
            if parsed.is_none() {
                issues.push(
                    format!("tracing.trust_traceparent_from[{i}]"),
                    format!("`{net}` is not an address or CIDR such as `10.0.0.0/8`"),
                );
            }
            parsed
        })
        .collect();
    TracingSettings {
        otlp_endpoint: s.otlp_endpoint.clone(),
        service_name: s.service_name.clone(),
        sample_ratio,
        trust_traceparent_from,
    }
}
