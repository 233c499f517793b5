// The Sentry-App side of the drainer: what happens around an app_webhook or email row's delivery
// (request log, daily health counters, broken-app disabling, SMTP sending).
#pragma once
#include "outboxd/config/config.hpp"
#include "outboxd/drain/completer.hpp"
#include "outboxd/drain/deliverer.hpp"
#include "outboxd/metrics/metrics.hpp"

namespace outboxd::apps {

class AppHooks {
public:
    AppHooks(const config::Config& cfg, metrics::Metrics& m) : cfg_(cfg), metrics_(m) {}
    // Runs inside each completer transaction with that flush's outcomes.
    drain::Completer::Extra completer_extra();
    // Registers the senders for non-HTTP categories (email) with the deliverer.
    void install(drain::Deliverer& d);

private:
    const config::Config& cfg_;
    metrics::Metrics& metrics_;
};

}  // namespace outboxd::apps
