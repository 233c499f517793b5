// Email delivery for outbox rows of category "email": one SMTP transaction per row through the
// configured relay (libcurl), blocking, so it runs on the deliverer's blocking pool.
#pragma once
#include <chrono>
#include <string>
#include <string_view>

#include "outboxd/http/client.hpp"

namespace outboxd::apps {

struct SmtpSettings {
    std::string url;      // smtp://host:port or smtps://host:port (user:password@ for AUTH)
    std::string from;     // the From header's text; the envelope sender is its address
    std::string ca_file;  // smtps: trust store ("" = the system's)
    std::chrono::milliseconds timeout{std::chrono::seconds(30)};
};

// The address an SMTP envelope needs: the part inside <…> of "Name <addr>", else the text trimmed.
std::string envelope_address(std::string_view from);
// True for something@something with no whitespace, control characters, '<' or '>': what may
// safely go into MAIL FROM / RCPT TO.
bool plausible_address(std::string_view address);
// The message with every line ending as CRLF (bare LF and bare CR become CRLF), ending in CRLF.
std::string to_crlf(std::string_view message);

// Sends MESSAGE (a full RFC 5322 text) to RCPT. Status 200 when the relay accepted it; else
// status 0 with the error: failure bad_url for an unusable address (not worth retrying), timeout
// when the relay was too slow, connect otherwise.
http::OutboundResult send_mail(const SmtpSettings& settings, std::string_view rcpt, std::string_view message);

}  // namespace outboxd::apps
