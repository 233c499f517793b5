// Parse functions of every provider (one file each in this folder), listed in registry.cpp.
#pragma once
#include "outboxd/common/scratch_json.hpp"
#include "outboxd/ingress/parser.hpp"

namespace outboxd::ingress {

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
