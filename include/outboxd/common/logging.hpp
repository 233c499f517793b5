// Log set-up: one line per event, logfmt or JSON, to stderr (journald reads it under systemd).
#pragma once
#include <string>

namespace outboxd {
void setup_logging(const std::string& level, const std::string& format);
// Level and format of the running logger (a SIGHUP reload); safe while other threads log.
void apply_log_settings(const std::string& level, const std::string& format);
}
