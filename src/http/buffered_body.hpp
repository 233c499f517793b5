// Both ends of outboxd's HTTP read a message in two steps, the header and then the body (the
// server to answer Expect: 100-continue, the client to skip interim answers and to size the body
// limit by the status). A small body usually arrives in the same segment as its header, and a
// second asynchronous read of bytes already buffered would still cost a trip through the
// scheduler: Beast completes even a read it can satisfy at once by posting. So what is buffered
// is parsed in place first.
#pragma once

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>

namespace outboxd::http {

// Feeds the bytes already in `buffer` to `parser`, consuming what it used. Returns a parse error
// (body_limit, bad_chunk, …) or none; the message is complete when parser.is_done(), otherwise the
// rest is still to be read from the stream.
template <bool isRequest, class Body>
boost::beast::error_code parse_buffered_body(boost::beast::http::parser<isRequest, Body>& parser,
                                             boost::beast::flat_buffer& buffer) {
    boost::beast::error_code ec;
    while (!parser.is_done() && buffer.size() > 0) {
        auto used = parser.put(buffer.data(), ec);
        buffer.consume(used);
        if (ec == boost::beast::http::error::need_more) return {};
        if (ec || used == 0) break;
    }
    return ec;
}

}  // namespace outboxd::http
