// SMTP through libcurl: MAIL FROM, one RCPT TO, DATA from memory (libcurl does the dot-stuffing).
#include "outboxd/apps/smtp.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <memory>

namespace outboxd::apps {

namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

struct Upload {
    std::string_view data;
    std::size_t pos = 0;
};

std::size_t read_body(char* buf, std::size_t size, std::size_t n, void* user) {
    auto* u = static_cast<Upload*>(user);
    std::size_t k = std::min(size * n, u->data.size() - u->pos);
    std::memcpy(buf, u->data.data() + u->pos, k);
    u->pos += k;
    return k;
}

http::OutboundResult failure(http::FailureKind kind, std::string error) {
    http::OutboundResult r;
    r.status = 0;
    r.failure = kind;
    r.error = std::move(error);
    return r;
}

}  // namespace

std::string envelope_address(std::string_view from) {
    auto open = from.rfind('<');
    if (open != std::string_view::npos) {
        auto close = from.find('>', open);
        if (close != std::string_view::npos) return std::string(trim(from.substr(open + 1, close - open - 1)));
    }
    return std::string(trim(from));
}

bool plausible_address(std::string_view a) {
    if (a.empty() || a.size() > 320) return false;
    for (unsigned char c : a)
        if (c <= 0x20 || c == 0x7F || c == '<' || c == '>') return false;
    auto at = a.rfind('@');
    return at != std::string_view::npos && at > 0 && at + 1 < a.size();
}

std::string to_crlf(std::string_view m) {
    std::string out;
    out.reserve(m.size() + m.size() / 32 + 2);
    for (std::size_t i = 0; i < m.size(); ++i) {
        char c = m[i];
        if (c == '\r') {
            out += "\r\n";
            if (i + 1 < m.size() && m[i + 1] == '\n') ++i;
        } else if (c == '\n') {
            out += "\r\n";
        } else {
            out += c;
        }
    }
    if (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0) out += "\r\n";
    return out;
}

http::OutboundResult send_mail(const SmtpSettings& s, std::string_view rcpt_in, std::string_view message) {
    auto started = std::chrono::steady_clock::now();
    std::string from = envelope_address(s.from);
    std::string rcpt(trim(rcpt_in));
    if (!plausible_address(rcpt)) return failure(http::FailureKind::bad_url, "smtp: unusable recipient address '" + rcpt + "'");
    if (!plausible_address(from)) return failure(http::FailureKind::bad_url, "smtp: unusable smtp.from address '" + from + "'");

    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> h(curl_easy_init(), &curl_easy_cleanup);
    if (!h) return failure(http::FailureKind::connect, "smtp: curl_easy_init failed");
    std::string body = to_crlf(message);
    Upload up{body};
    std::string mail_from = "<" + from + ">";
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> rcpts(
        curl_slist_append(nullptr, ("<" + rcpt + ">").c_str()), &curl_slist_free_all);
    char errbuf[CURL_ERROR_SIZE] = {0};
    auto ms = static_cast<long>(s.timeout.count());
    CURL* c = h.get();
    curl_easy_setopt(c, CURLOPT_URL, s.url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, mail_from.c_str());
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpts.get());
    curl_easy_setopt(c, CURLOPT_READFUNCTION, &read_body);
    curl_easy_setopt(c, CURLOPT_READDATA, &up);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, std::min(ms, 10000L));
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    if (!s.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, s.ca_file.c_str());

    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    http::OutboundResult r;
    r.elapsed = std::chrono::steady_clock::now() - started;
    if (rc == CURLE_OK) {
        r.status = 200;
        r.body_head = "smtp " + std::to_string(code);
        return r;
    }
    std::string why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    auto kind = rc == CURLE_OPERATION_TIMEDOUT ? http::FailureKind::timeout : http::FailureKind::connect;
    auto out = failure(kind, "smtp: " + why + (code ? " (last reply " + std::to_string(code) + ")" : ""));
    out.elapsed = r.elapsed;
    return out;
}

}  // namespace outboxd::apps
