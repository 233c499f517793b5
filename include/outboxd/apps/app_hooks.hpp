// The Sentry-App side of the drainer: what happens around an app_webhook or email row's delivery
// (request log, daily health counters, broken-app disabling, SMTP sending). The logic lives in SQL
// (sql/004_apps.sql); this class feeds it each flush's outcomes and sends the email rows.
#pragma once
#include <atomic>
#include <cstdint>
#include <vector>

#include "outboxd/config/config.hpp"
#include "outboxd/db/connection.hpp"
#include "outboxd/drain/completer.hpp"
#include "outboxd/drain/deliverer.hpp"
#include "outboxd/http/client.hpp"
#include "outboxd/metrics/metrics.hpp"

namespace outboxd::apps {

class AppHooks {
public:
    // Registers outboxd_apps_disabled_total and outboxd_emails_total{result} (one AppHooks per
    // process: the daemon's).
    AppHooks(const config::Config& cfg, metrics::Metrics& m);
    // Runs inside each completer transaction with that flush's outcomes.
    drain::Completer::Extra completer_extra();
    // Registers the senders for non-HTTP categories (email) with the deliverer.
    void install(drain::Deliverer& d);

    // The Extra's body: one outboxd_app_record_outcomes() call for the batch's app_webhook
    // outcomes, inside a savepoint so that a failure there (logged, counted in
    // outboxd_db_errors_total{component="apps"}) never holds back the outbox writes of the flush;
    // lost connections, deadlocks and serialization failures are rethrown (the flush is retried).
    // Returns the ids of the apps disabled as broken.
    std::vector<std::int64_t> record(db::Connection& c, const std::vector<drain::Outcome>& batch);
    // The "email" sender: SMTP to row.target_url with row.body as the message.
    http::OutboundResult send_email(const drain::ClaimedRow& row) const;
    // The app_webhook check made right before each send: the app's current URL and signing
    // secret; not sent at all (dead) once the app is disabled or deleted, or the installation gone.
    drain::CurrentTarget current_target(const drain::ClaimedRow& row);

private:
    const config::Config& cfg_;
    metrics::Metrics& metrics_;
    db::Pool pool_;  // for current_target(), on the blocking pool
    metrics::Family<metrics::Counter>& disabled_;
    metrics::Family<metrics::Counter>& emails_;
    std::atomic<std::int64_t> next_prune_ms_{0};
};

}  // namespace outboxd::apps
