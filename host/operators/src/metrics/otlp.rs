//! OTLP push of the same metrics (OTLP/HTTP with protobuf, cumulative temporality), in OTLP's own
//! model: the histogram keeps its field name and unit (`latency`, `µs`) and its explicit bucket
//! bounds, and each `--otel-metrics-name` is the instrumentation scope, as in IG.
//!
//! The OpenTelemetry Rust SDK cannot take pre-aggregated buckets (only one `record` per value),
//! so data points are built directly from the kernel's counts with the OTLP protobuf types;
//! the SDK provides the resource (service and SDK attributes).

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::{MetricsRegistry, ScopeSnapshot, histogram_sum};
use gadget_model::datasource::FieldKind;

const TIMEOUT: Duration = Duration::from_secs(10);

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn kv(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

/// The OTel SDK's default resource (service.name, telemetry.sdk.*), named for this host.
fn resource() -> Resource {
    let sdk = opentelemetry_sdk::Resource::builder()
        .with_service_name("gadget")
        .build();
    Resource {
        attributes: sdk
            .iter()
            .map(|(k, v)| kv(k.as_str(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

/// The export request for the registry's current state.
pub fn request(
    scopes: &[ScopeSnapshot],
    start_ns: u64,
    now_ns: u64,
) -> ExportMetricsServiceRequest {
    let attrs = |labels: &[(String, String)]| {
        labels
            .iter()
            .map(|(k, v)| kv(k, v.clone()))
            .collect::<Vec<_>>()
    };
    let scope_metrics = scopes
        .iter()
        .map(|s| {
            let field = |name: &str| s.datasource.field(name);
            let mut metrics = Vec::new();
            for h in &s.publication.histograms {
                // OTLP buckets are (bound[i-1], bound[i]] plus an overflow bucket after the last
                // bound; the eBPF slots already fold overflow into the last one, so it is 0.
                let mut bucket_counts = h.counts.clone();
                bucket_counts.push(0);
                metrics.push(Metric {
                    name: h.field.clone(),
                    description: field(&h.field)
                        .map(|f| f.description.clone())
                        .unwrap_or_default(),
                    unit: field(&h.field).map(|f| f.unit.clone()).unwrap_or_default(),
                    data: Some(metric::Data::Histogram(Histogram {
                        data_points: vec![HistogramDataPoint {
                            attributes: attrs(&h.labels),
                            start_time_unix_nano: start_ns,
                            time_unix_nano: now_ns,
                            count: h.total(),
                            sum: Some(histogram_sum(h)),
                            bucket_counts,
                            explicit_bounds: h.upper_bounds.iter().map(|b| *b as f64).collect(),
                            ..Default::default()
                        }],
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    })),
                    ..Default::default()
                });
            }
            for sample in &s.publication.samples {
                let point = NumberDataPoint {
                    attributes: attrs(&sample.labels),
                    start_time_unix_nano: start_ns,
                    time_unix_nano: now_ns,
                    value: Some(number_data_point::Value::AsDouble(sample.value)),
                    ..Default::default()
                };
                let f = field(&sample.field);
                let data = if f.map(|f| f.kind) == Some(FieldKind::Counter) {
                    metric::Data::Sum(Sum {
                        data_points: vec![point],
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })
                } else {
                    metric::Data::Gauge(Gauge {
                        data_points: vec![point],
                    })
                };
                metrics.push(Metric {
                    name: sample.field.clone(),
                    description: f.map(|f| f.description.clone()).unwrap_or_default(),
                    unit: f.map(|f| f.unit.clone()).unwrap_or_default(),
                    data: Some(data),
                    ..Default::default()
                });
            }
            ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: s.scope.clone(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource()),
            scope_metrics,
            ..Default::default()
        }],
    }
}

/// Pushes the registry to `endpoint` (e.g. `http://collector:4318/v1/metrics`) every `interval`
/// until `stop` fires or is dropped, then once more so the final counts arrive. Failures are
/// logged and retried at the next interval: a collector outage never stops a gadget.
pub fn push_loop(
    endpoint: String,
    interval: Duration,
    registry: MetricsRegistry,
    stop: Receiver<()>,
) {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let start_ns = now_ns();
    loop {
        let last = !matches!(stop.recv_timeout(interval), Err(RecvTimeoutError::Timeout));
        let scopes = registry.snapshot();
        if !scopes.is_empty() {
            let body = request(&scopes, start_ns, now_ns()).encode_to_vec();
            match agent
                .post(&endpoint)
                .header("Content-Type", "application/x-protobuf")
                .send(&body[..])
            {
                Ok(r) if r.status().is_success() => {
                    tracing::debug!("pushed OTLP metrics to {endpoint}")
                }
                Ok(r) => tracing::warn!("OTLP push to {endpoint}: HTTP {}", r.status()),
                Err(e) => tracing::warn!("OTLP push to {endpoint}: {e}"),
            }
        }
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_in_otlps_model() {
        let scopes = vec![super::super::latency_scope(
            vec![("node".into(), "a".into())],
            vec![1, 2, 4],
            vec![0, 2, 3],
        )];
        let req = request(&scopes, 1, 2);
        let rm = &req.resource_metrics[0];
        let attrs = &rm.resource.as_ref().unwrap().attributes;
        assert!(attrs.iter().any(|a| a.key == "service.name"));
        let sm = &rm.scope_metrics[0];
        assert_eq!(sm.scope.as_ref().unwrap().name, "blockio-metrics");
        let m = &sm.metrics[0];
        assert_eq!((m.name.as_str(), m.unit.as_str()), ("latency", "µs"));
        let Some(metric::Data::Histogram(h)) = &m.data else {
            panic!("not a histogram")
        };
        let p = &h.data_points[0];
        assert_eq!(p.count, 5);
        assert_eq!(p.bucket_counts, vec![0, 2, 3, 0]);
        assert_eq!(p.explicit_bounds, vec![1.0, 2.0, 4.0]);
        assert_eq!(p.sum, Some(16.0));
    }
}
