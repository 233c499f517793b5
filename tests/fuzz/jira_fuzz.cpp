// libFuzzer target for the jira parser (JWT decoding, HS256, exp and the qsh query canonicalisation):
// whatever the request, it must yield a well-formed decision without crashing, hanging or
// reading out of bounds (input format: fuzz_support.hpp).
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return outboxd::fuzz::run("jira", "jira", data, size);
}
