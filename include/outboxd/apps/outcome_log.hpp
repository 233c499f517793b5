// Pure helpers of the app request log: which delivery outcomes are logged, and how they travel to
// Postgres (one JSON parameter per completer flush, read there with jsonb_to_record).
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "outboxd/drain/types.hpp"

namespace outboxd::apps {

// Text that Postgres accepts in a jsonb string: valid UTF-8 (each invalid byte becomes U+FFFD;
// an incomplete sequence at the very end, the trace of a cut at 1 KiB, is dropped) without NUL.
std::string clean_text(std::string_view in);

// The batch's app_webhook outcomes (every kind but release) as the JSON array that
// outboxd_app_record_outcomes() reads: [{id, mailbox, kind, status, url, error, request_head,
// response_head}]. nullopt when the batch holds none.
std::optional<std::string> app_outcomes_json(const std::vector<drain::Outcome>& batch);

}  // namespace outboxd::apps
