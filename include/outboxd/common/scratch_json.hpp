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
    boost::json::value parse(std::string_view text, boost::system::error_code& ec) {
        return boost::json::parse(text, ec, boost::json::storage_ptr(&arena_));
    }

private:
    alignas(std::max_align_t) unsigned char first_[4096];
    boost::json::monotonic_resource arena_{first_, sizeof first_};
};

}  // namespace outboxd
