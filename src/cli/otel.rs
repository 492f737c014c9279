//! The binary's OpenTelemetry export (`otel` feature): a tracing-opentelemetry layer that
//! is part of the subscriber from the start (so the request span's parent can be set and
//! its context read), bound to an OTLP/HTTP exporter once the configuration is read.
//! Until then, and when nothing asks for export, the layer sees no span at all.
//!
//! Spans are batched on the SDK's own thread; each batch is sent by the proxy's reqwest
//! client on the proxy's runtime.

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicBool, Ordering},
};

use opentelemetry::{
    Context, KeyValue,
    trace::{Link, SpanKind, TraceId, TraceState, TracerProvider},
};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::{
    Resource,
    error::OTelSdkResult,
    trace::{
        BatchSpanProcessor, Sampler, SamplingDecision, SamplingResult, SdkTracerProvider,
        ShouldSample, Span, SpanData, SpanProcessor,
    },
};
use tracing_subscriber::{Layer, filter::filter_fn, registry::LookupSpan};

use mcp_warden::config::TracingSettings;

/// The export, bound or not.
pub struct Otel {
    provider: SdkTracerProvider,
    late: Arc<Late>,
    enabled: Arc<AtomicBool>,
}

/// What the configuration decides, set once.
#[derive(Debug, Default)]
struct Late {
    processor: OnceLock<BatchSpanProcessor>,
    sampler: OnceLock<Sampler>,
}

/// The subscriber's layer and its export. The layer passes only the proxy's request and
/// backend-call spans, and only once export is bound.
pub fn layer<S>() -> (impl Layer<S>, Otel)
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let late = Arc::new(Late::default());
    let enabled = Arc::new(AtomicBool::new(false));
    let provider = SdkTracerProvider::builder()
        .with_span_processor(LateProcessor(late.clone()))
        .with_sampler(LateSampler(late.clone()))
        .build();
    let on = enabled.clone();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("mcp-warden"))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_filter(filter_fn(move |meta| {
            on.load(Ordering::Relaxed)
                && meta.is_span()
                && matches!(
                    meta.target(),
                    mcp_warden::trace::REQUEST | mcp_warden::trace::TRACE
                )
        }));
    (
        layer,
        Otel {
            provider,
            late,
            enabled,
        },
    )
}

/// Whether `[tracing]` or the standard environment asks for export.
pub fn requested(settings: &TracingSettings) -> bool {
    let set = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    settings.otlp_endpoint.is_some()
        || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        || set("OTEL_EXPORTER_OTLP_ENDPOINT")
}

impl Otel {
    /// Starts exporting as `settings` say (on the current runtime). Once only.
    pub fn bind(&self, settings: &TracingSettings) -> anyhow::Result<()> {
        let client = OnRuntime {
            client: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()?,
            runtime: tokio::runtime::Handle::current(),
        };
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client);
        if let Some(base) = &settings.otlp_endpoint {
            exporter = exporter.with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')));
        }
        let exporter = exporter
            .build()
            .map_err(|e| anyhow::anyhow!("tracing: cannot build the OTLP exporter: {e}"))?;
        let mut processor = BatchSpanProcessor::builder(exporter).build();
        let mut resource = Resource::builder();
        if let Some(name) = &settings.service_name {
            resource = resource.with_service_name(name.clone());
        } else if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("mcp-warden");
        }
        processor.set_resource(&resource.build());
        let sampler =
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio)));
        anyhow::ensure!(
            self.late.sampler.set(sampler).is_ok() && self.late.processor.set(processor).is_ok(),
            "tracing: export is already set up"
        );
        self.enabled.store(true, Ordering::Relaxed);
        tracing::info!(
            endpoint = settings
                .otlp_endpoint
                .as_deref()
                .unwrap_or("from OTEL_EXPORTER_OTLP_*"),
            sample_ratio = settings.sample_ratio,
            "exporting traces over OTLP/HTTP"
        );
        // Callsites cached as "not interested" ask again.
        tracing::callsite::rebuild_interest_cache();
        Ok(())
    }

    /// Sends what is batched; waits for it (the runtime must still run).
    pub fn shutdown(&self) {
        if self.enabled.swap(false, Ordering::Relaxed) {
            let _ = self.provider.shutdown();
        }
    }
}

#[derive(Debug, Clone)]
struct LateProcessor(Arc<Late>);

impl SpanProcessor for LateProcessor {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        if let Some(p) = self.0.processor.get() {
            p.on_start(span, cx);
        }
    }

    fn on_end(&self, span: SpanData) {
        if let Some(p) = self.0.processor.get() {
            p.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.processor.get().map_or(Ok(()), |p| p.force_flush())
    }

    fn shutdown_with_timeout(&self, timeout: std::time::Duration) -> OTelSdkResult {
        self.0
            .processor
            .get()
            .map_or(Ok(()), |p| p.shutdown_with_timeout(timeout))
    }
}

#[derive(Debug, Clone)]
struct LateSampler(Arc<Late>);

impl ShouldSample for LateSampler {
    fn should_sample(
        &self,
        parent: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        match self.0.sampler.get() {
            Some(s) => s.should_sample(parent, trace_id, name, kind, attributes, links),
            None => SamplingResult {
                decision: SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: TraceState::default(),
            },
        }
    }
}

/// The exporter's HTTP client: the SDK's batch thread awaits a request that runs on the
/// proxy's runtime.
#[derive(Debug)]
struct OnRuntime {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for OnRuntime {
    async fn send_bytes(
        &self,
        request: http::Request<opentelemetry_http::Bytes>,
    ) -> Result<http::Response<opentelemetry_http::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let response = client.execute(reqwest::Request::try_from(request)?).await?;
            let mut answer = http::Response::new(opentelemetry_http::Bytes::new());
            *answer.status_mut() = response.status();
            *answer.headers_mut() = response.headers().clone();
            // A collector answers with a small status message; never read more.
            let body = response.bytes().await?;
            *answer.body_mut() = body.slice(..body.len().min(64 * 1024));
            Ok::<_, opentelemetry_http::HttpError>(answer)
        });
        sent.await?
    }
}
