// Parse functions of every provider (one file each in this folder), listed in registry.cpp.
#pragma once
#include <boost/json.hpp>

#include "outboxd/ingress/parser.hpp"

namespace outboxd::ingress {

// A webhook body's JSON tree lives only while its parser runs, so it is built in one arena (a
// stack buffer first, the heap beyond it) instead of one heap allocation per node. Declare the
// BodyJson before the value it returns: the value must not outlive it.
class BodyJson {
public:
    BodyJson() = default;
    BodyJson(const BodyJson&) = delete;
    BodyJson& operator=(const BodyJson&) = delete;
    boost::json::value parse(std::string_view text, boost::system::error_code& ec) {
        return boost::json::parse(text, ec, boost::json::storage_ptr(&arena_));
    }

private:
    alignas(std::max_align_t) unsigned char first_[4096];
    boost::json::monotonic_resource arena_{first_, sizeof first_};
};

Decision parse_github(const Request& req, std::string_view subpath, Context& ctx);
Decision parse_gitlab(const Request& req, std::string_view subpath, Context& ctx);
Decision parse_slack(const Request& req, std::string_view subpath, Context& ctx);
Decision parse_jira(const Request& req, std::string_view subpath, Context& ctx);
Decision parse_jira_server(const Request& req, std::string_view subpath, Context& ctx);
Decision parse_msteams(const Request& req, std::string_view subpath, Context& ctx);
Decision parse_vsts(const Request& req, std::string_view subpath, Context& ctx);
Decision parse_bitbucket(const Request& req, std::string_view subpath, Context& ctx);
Decision parse_discord(const Request& req, std::string_view subpath, Context& ctx);

// Atlassian Connect's query-string hash (the JWT `qsh` claim) of a request: hex SHA-256 of
// "METHOD&path-without-trailing-slash&canonical-query". Exposed for tests and tools.
std::string jira_query_hash(std::string_view method, std::string_view path, std::string_view query);

}  // namespace outboxd::ingress
