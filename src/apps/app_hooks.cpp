// Placeholder wiring of the app hooks; the request log and health counters attach here.
#include "outboxd/apps/app_hooks.hpp"

namespace outboxd::apps {

drain::Completer::Extra AppHooks::completer_extra() { return {}; }

void AppHooks::install(drain::Deliverer&) {}

}  // namespace outboxd::apps
