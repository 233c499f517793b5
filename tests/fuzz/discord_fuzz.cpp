// libFuzzer target: the discord parser must answer every request with a well-formed decision, never
// crash, hang or read out of bounds (input format in fuzz_support.hpp).
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    return outboxd::fuzz::run("discord", "discord", data, size);
}
