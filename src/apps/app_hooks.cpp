// Wiring of the app hooks: the completer's Extra (request log, health counters, broken-app check,
// all in SQL) and the email sender.
#include "outboxd/apps/app_hooks.hpp"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>

#include "outboxd/apps/outcome_log.hpp"
#include "outboxd/apps/smtp.hpp"
#include "outboxd/ingress/parser.hpp"

namespace outboxd::apps {

namespace {

constexpr const char* kRecord =
    "SELECT app_id FROM outboxd_app_record_outcomes($1::jsonb, $2::integer, $3::text) AS app_id";
constexpr const char* kPruneMeta = "SELECT outboxd_app_prune_meta()";
// The app and installation as they are now. No meta row (a webhook replayed long after its meta
// was pruned): nothing to check, the row is sent as stored.
constexpr const char* kCurrentApp = R"(
SELECT a.status, coalesce(a.webhook_url, ''), a.client_secret, i.status
FROM sentry_app_outbox_meta m
LEFT JOIN sentry_app a ON a.id = m.sentry_app_id
LEFT JOIN sentry_app_installation i ON i.id = m.installation_id AND i.sentry_app_id = m.sentry_app_id
WHERE m.outbox_id = $1)";
constexpr std::int64_t kPruneEveryMs = 10 * 60 * 1000;

std::int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

AppHooks::AppHooks(const config::Config& cfg, metrics::Metrics& m)
    : cfg_(cfg),
      metrics_(m),
      pool_(cfg.database.url, 2, "outboxd-apps"),
      disabled_(m.registry.counter("outboxd_apps_disabled_total",
                                   "Sentry apps disabled as broken (internal apps failing for 7 days or timing out).")),
      emails_(m.registry.counter("outboxd_emails_total", "Email rows handed to the SMTP relay, by result (sent, failed).",
                                 {"result"})) {
    disabled_.with({}).inc(0);
    emails_.with({"sent"}).inc(0);
    emails_.with({"failed"}).inc(0);
}

drain::Completer::Extra AppHooks::completer_extra() {
    return [this](db::Connection& c, const std::vector<drain::Outcome>& batch) { record(c, batch); };
}

std::vector<std::int64_t> AppHooks::record(db::Connection& c, const std::vector<drain::Outcome>& batch) {
    std::vector<std::int64_t> disabled;
    auto json = app_outcomes_json(batch);
    if (!json) return disabled;
    auto now = steady_ms();
    auto due = next_prune_ms_.load();
    bool prune = now >= due && next_prune_ms_.compare_exchange_strong(due, now + kPruneEveryMs);

    c.exec("SAVEPOINT outboxd_apps");
    try {
        // This runs in the completer's transaction: a lock held elsewhere on an app's rows must
        // not hold back every delivery's completion. After a second the app part is given up for
        // this batch (logged below); the deliveries are completed all the same.
        c.exec("SET LOCAL lock_timeout = '1s'");
        auto r = c.exec_prepared("apps_record_outcomes", kRecord,
                                 db::Params(*json, cfg_.apps.broken_timeout_threshold, cfg_.smtp.from));
        for (int i = 0; i < r.rows(); ++i) disabled.push_back(r.int64(i, 0));
        if (prune) c.exec_prepared("apps_prune_meta", kPruneMeta);
        c.exec("RELEASE SAVEPOINT outboxd_apps");
    } catch (const db::Error& e) {
        if (e.connection_lost() || e.sqlstate() == "40P01" || e.sqlstate() == "40001") throw;
        c.exec("ROLLBACK TO SAVEPOINT outboxd_apps");
        c.exec("RELEASE SAVEPOINT outboxd_apps");
        metrics_.db_errors.with({"apps"}).inc();
        spdlog::error("apps: request log and health counters not written for this batch sqlstate={} error=\"{}\"",
                      e.sqlstate(), e.what());
        return {};
    }
    if (!disabled.empty()) disabled_.with({}).inc(static_cast<double>(disabled.size()));
    for (auto id : disabled)
        spdlog::warn("apps: sentry_app id={} disabled as broken; audit log written, owners emailed", id);
    return disabled;
}

http::OutboundResult AppHooks::send_email(const drain::ClaimedRow& row) const {
    SmtpSettings s;
    s.url = cfg_.smtp.url;
    s.from = cfg_.smtp.from;
    s.ca_file = cfg_.tls.ca_file;
    s.timeout = std::max<std::chrono::milliseconds>(cfg_.drain.request_timeout, std::chrono::seconds(10));
    auto res = send_mail(s, row.target_url.value_or(""), row.body);
    emails_.with({res.status == 200 ? "sent" : "failed"}).inc();
    if (res.status == 200)
        spdlog::info("apps: email id={} mailbox={} sent", row.id, row.mailbox);
    else
        spdlog::warn("apps: email id={} mailbox={} not sent error=\"{}\"", row.id, row.mailbox, res.error);
    return res;
}

drain::CurrentTarget AppHooks::current_target(const drain::ClaimedRow& row) {
    using drain::CurrentTarget;
    CurrentTarget t;
    try {
        auto lease = pool_.acquire(std::chrono::seconds(5));
        if (!lease) return {CurrentTarget::Verdict::unknown, "no database connection free"};
        auto r = (*lease)->exec_prepared("apps_current_target", kCurrentApp, db::Params(row.id));
        if (r.rows() == 0) return t;
        if (r.is_null(0, 0)) return {CurrentTarget::Verdict::drop, "app_deleted"};
        if (r.text(0, 0) == "disabled") return {CurrentTarget::Verdict::drop, "app_disabled"};
        if (r.is_null(0, 3) || r.text(0, 3) != "installed") return {CurrentTarget::Verdict::drop, "app_uninstalled"};
        if (r.text(0, 1).empty()) return {CurrentTarget::Verdict::drop, "app_without_url"};
        // Sentry reads the URL and the secret when it sends: a moved endpoint or a rotated secret
        // applies to webhooks already queued.
        t.url = r.text(0, 1);
        t.header = std::pair<std::string, std::string>("Sentry-Hook-Signature",
                                                       ingress::hmac_sha256_hex(r.text(0, 2), row.body));
        return t;
    } catch (const std::exception& e) {
        return {CurrentTarget::Verdict::unknown, e.what()};
    }
}

void AppHooks::install(drain::Deliverer& d) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    d.set_sender("email", [this](const drain::ClaimedRow& row) { return send_email(row); });
    d.set_send_time_check("app_webhook", [this](const drain::ClaimedRow& row) { return current_target(row); });
}

}  // namespace outboxd::apps
