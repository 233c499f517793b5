// spdlog configured for the journal: key=value lines (logfmt) or one JSON object per line.
#include "outboxd/common/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace outboxd {
namespace {
// Escapes the message for the JSON format (spdlog's %v is raw).
class JsonMessageFlag : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
        for (char c : std::string_view(msg.payload.data(), msg.payload.size())) {
            switch (c) {
                case '"': dest.append(std::string_view("\\\"")); break;
                case '\\': dest.append(std::string_view("\\\\")); break;
                case '\n': dest.append(std::string_view("\\n")); break;
                case '\t': dest.append(std::string_view("\\t")); break;
                default:
                    if (static_cast<unsigned char>(c) < 0x20) dest.append(std::string_view("?"));
                    else dest.push_back(c);
            }
        }
    }
    std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMessageFlag>(); }
};
}  // namespace

void setup_logging(const std::string& level, const std::string& format) {
    auto logger = spdlog::stderr_logger_mt("outboxd");
    spdlog::set_default_logger(logger);
    apply_log_settings(level, format);
    spdlog::flush_on(spdlog::level::info);
}

void apply_log_settings(const std::string& level, const std::string& format) {
    // The logger stays: other threads may be logging through it. Its sink takes the new formatter
    // under the sink's own lock.
    auto f = std::make_unique<spdlog::pattern_formatter>();
    if (format == "json") {
        f->add_flag<JsonMessageFlag>('*').set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","msg":"%*"})");
    } else {
        f->set_pattern("ts=%Y-%m-%dT%H:%M:%S.%e%z level=%l %v");
    }
    spdlog::set_formatter(std::move(f));
    spdlog::set_level(spdlog::level::from_str(level));
}

}  // namespace outboxd
