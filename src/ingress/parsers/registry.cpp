// The provider table: adding a provider is one parser file plus one line here.
#include "outboxd/ingress/parser.hpp"
#include "parsers.hpp"

namespace outboxd::ingress {

const std::vector<Provider>& providers() {
    static const std::vector<Provider> table = {
        {"github", &parse_github},
        {"gitlab", &parse_gitlab},
        {"slack", &parse_slack},
        {"jira", &parse_jira},
        {"jira_server", &parse_jira_server},
        {"msteams", &parse_msteams},
        {"vsts", &parse_vsts},
        {"bitbucket", &parse_bitbucket},
        {"discord", &parse_discord},
    };
    return table;
}

const Provider* find_provider(std::string_view name) {
    for (const auto& p : providers())
        if (p.name == name) return &p;
    return nullptr;
}

}  // namespace outboxd::ingress
