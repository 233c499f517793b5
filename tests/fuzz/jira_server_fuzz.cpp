// libFuzzer target for the jira_server parser (the JWT in the URL path and the changelog test):
// whatever the request, it must yield a well-formed decision without crashing, hanging or
// reading out of bounds (input format: fuzz_support.hpp).
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return outboxd::fuzz::run("jira_server", "jira-server", data, size);
}
