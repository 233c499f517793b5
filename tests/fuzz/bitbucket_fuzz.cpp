// libFuzzer target for the bitbucket parser (organization id parsing in the path):
// whatever the request, it must yield a well-formed decision without crashing, hanging or
// reading out of bounds (input format: fuzz_support.hpp).
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return outboxd::fuzz::run("bitbucket", "bitbucket", data, size);
}
