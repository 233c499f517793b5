// The metric families outboxd exports, created once; dashboards and alert rules rely on these names.
#pragma once
#include "outboxd/metrics/registry.hpp"

namespace outboxd::metrics {

struct Metrics {
    Registry registry;

    Family<Counter>& ingress_requests = registry.counter(
        "outboxd_ingress_requests_total", "Webhook requests answered, by provider and HTTP status.", {"provider", "code"});
    Family<Counter>& ingress_rejected = registry.counter(
        "outboxd_ingress_rejected_total", "Webhook requests refused or dropped, by provider and reason.",
        {"provider", "reason"});
    Family<Histogram>& ingress_duration = registry.histogram(
        "outboxd_ingress_duration_seconds", "Time from request read to answer (includes the commit).", {"provider"},
        latency_buckets());
    Family<Counter>& directory_lookups = registry.counter(
        "outboxd_ingress_directory_cache_total",
        "Webhooks by how their lookups were answered: hit (memory), miss (not cached: database), recheck (a refusal "
        "the cache would give, checked against the database).",
        {"result"});
    Family<Counter>& directory_invalidations = registry.counter(
        "outboxd_ingress_directory_cache_invalidations_total",
        "Times the lookup cache was dropped: a change to the directory tables, or the listening session (re)connecting.");
    Family<Counter>& enqueued = registry.counter("outboxd_enqueued_total", "Outbox rows committed, by region.", {"region"});
    Family<Counter>& deliveries = registry.counter(
        "outboxd_deliveries_total", "Delivery attempts by region and outcome (delivered, retry, dead).",
        {"region", "outcome"});
    Family<Counter>& delivery_status = registry.counter(
        "outboxd_delivery_responses_total", "Delivery attempts by region and status class (2xx..5xx, error).",
        {"region", "class"});
    Family<Histogram>& delivery_duration = registry.histogram(
        "outboxd_delivery_duration_seconds", "Duration of one delivery attempt.", {"region"}, latency_buckets());
    Family<Histogram>& delivery_age = registry.histogram(
        "outboxd_delivery_age_seconds", "Enqueue-to-delivery age of delivered rows.", {"region"}, latency_buckets());
    Family<Counter>& dead_letters = registry.counter(
        "outboxd_dead_letters_total", "Rows moved to control_outbox_dead, by region and reason.", {"region", "reason"});
    Family<Gauge>& in_flight = registry.gauge("outboxd_deliveries_in_flight", "Deliveries in flight in this daemon.");
    Family<Gauge>& backlog_rows = registry.gauge(
        "outboxd_backlog_rows",
        "Undelivered rows per region (counted in control_outbox every 5 s, less often when counting is slow).",
        {"region"});
    Family<Gauge>& backlog_count_duration = registry.gauge(
        "outboxd_backlog_count_duration_seconds",
        "How long the last count of outboxd_backlog_rows took; the next waits 20 times as long (at least 5 s).");
    Family<Gauge>& oldest_age = registry.gauge(
        "outboxd_oldest_row_age_seconds", "Age of the oldest undelivered row per region (0 when empty).", {"region"});
    Family<Gauge>& dead_rows = registry.gauge(
        "outboxd_dead_rows", "Rows in control_outbox_dead per region (sampled).", {"region"});
    Family<Gauge>& circuit_open = registry.gauge(
        "outboxd_region_circuit_open", "1 while a region's circuit breaker is open (deliveries paused).", {"region"});
    Family<Counter>& claims = registry.counter("outboxd_claims_total", "Claim queries run.");
    Family<Counter>& claimed_rows = registry.counter("outboxd_claimed_rows_total", "Rows claimed.");
    Family<Counter>& db_errors = registry.counter(
        "outboxd_db_errors_total", "Database errors, by component.", {"component"});
    Family<Counter>& db_pool_timeouts = registry.counter(
        "outboxd_db_pool_timeouts_total", "Requests answered 503 because no database connection freed up in time.");
    Family<Histogram>& commit_batch = registry.histogram(
        "outboxd_ingress_commit_batch_size", "Webhooks persisted per group commit.", {},
        {1, 2, 4, 8, 16, 32, 64, 128, 256, 512});
    Family<Histogram>& commit_duration = registry.histogram(
        "outboxd_ingress_commit_duration_seconds",
        "Time of one group commit's INSERT, WAL flush included, as seen by the writer session.", {},
        {0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024});
    Family<Counter>& tls_errors = registry.counter(
        "outboxd_tls_errors_total", "TLS handshake or verification failures, by destination host.", {"host"});
    Family<Counter>& tls_handshakes = registry.counter(
        "outboxd_tls_handshakes_total", "Completed TLS handshakes to destinations, by whether the session was resumed.",
        {"resumed"});
    Family<Counter>& connections_opened = registry.counter(
        "outboxd_delivery_connections_total", "Connections (and TLS handshakes) opened to destinations.", {"scheme"});
    Family<Gauge>& build_info = registry.gauge("outboxd_build_info", "Always 1; the version label names the build.",
                                                {"version"});
};

}  // namespace outboxd::metrics
