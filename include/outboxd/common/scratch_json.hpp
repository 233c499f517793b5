// A JSON tree that lives only while one function reads it (a webhook body in its parser, a claimed
// row's stored headers) is built in one arena: a stack buffer first, the heap beyond it, instead of
// one heap allocation per node. Declare the ScratchJson before the value it returns: the value
// must not outlive it.
#pragma once
#include <boost/json.hpp>

#include <cstddef>
#include <string_view>

namespace outboxd {

class ScratchJson {
public:
    ScratchJson() = default;
    ScratchJson(const ScratchJson&) = delete;
    ScratchJson& operator=(const ScratchJson&) = delete;
    // What providers send is read as RFC 8259 and Sentry's Python parser read it: nesting deeper
    // than Boost's default of 32 levels (up to about Python's 1,000; the parser keeps its own
    // stack, so the bound is memory, not the thread's) and escaped lone surrogates (read as
    // U+FFFD; the stored body keeps its bytes). Refusing either lost a webhook with a 400.
    boost::json::value parse(std::string_view text, boost::system::error_code& ec);

private:
    alignas(std::max_align_t) unsigned char first_[4096];
    boost::json::monotonic_resource arena_{first_, sizeof first_};
};

}  // namespace outboxd
