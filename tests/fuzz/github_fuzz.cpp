// libFuzzer target for the github parser (JSON installation.id, optional X-Hub-Signature-256):
// whatever the request, it must yield a well-formed decision without crashing, hanging or
// reading out of bounds (input format: fuzz_support.hpp).
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return outboxd::fuzz::run("github", "github", data, size);
}
