import Foundation
import Prometheus

/// The server's Prometheus metrics (`GET /metrics`, text format), all under `movq_`.
public final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let queueDepth: Gauge
    let inFlight: Gauge
    let batchSize: ValueHistogram
    let imagesGenerated: Counter
    let droppedBeforeStart: Counter
    /// Request latency buckets: milliseconds to minutes.
    static let latencyBuckets: [Duration] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 120_000, 300_000, 600_000]
        .map { .milliseconds($0) }

    static func name(_ metric: String, unit: String = "", _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "movq", metricName: metric, unitName: unit, helpText: help)
    }

    init() {
        queueDepth = registry.makeGauge(descriptor: Self.name("queue_depth", "Requests waiting for compute"))
        inFlight = registry.makeGauge(descriptor: Self.name("inflight_batches", "Batches being computed"))
        batchSize = registry.makeValueHistogram(descriptor: Self.name("batch_images", "Images per computed batch"), buckets: [1, 2, 4, 8, 16, 32, 64])
        imagesGenerated = registry.makeCounter(descriptor: Self.name("images_generated", unit: "total", "Images generated"))
        droppedBeforeStart = registry.makeCounter(descriptor: Self.name("dropped_before_start", unit: "total",
                                                                        "Requests whose client left before their work started"))
    }

    /// Counts a finished request and its latency.
    func request(route: String, status: Int, seconds: Double) {
        registry.makeCounter(descriptor: Self.name("requests", unit: "total", "Requests by route and status"),
                             labels: [("route", route), ("status", String(status))]).increment()
        registry.makeDurationHistogram(descriptor: Self.name("request_duration", unit: "seconds", "Request latency"), labels: [("route", route)],
                                       buckets: Self.latencyBuckets).record(.nanoseconds(Int64(seconds * 1e9)))
    }

    /// Records how long a model took to load and warm.
    func modelLoaded(_ name: String, seconds: Double) {
        registry.makeGauge(descriptor: Self.name("model_load", unit: "seconds", "Seconds to load and warm a model"), labels: [("model", name)]).set(seconds)
    }

    /// The Prometheus text exposition.
    var text: String { registry.emitToString() }
}
