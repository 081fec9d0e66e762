#pragma once
// Shared helpers of the Redis integration tests: an io_context that runs one operation at a
// time to completion, and connections to a redis_peer.

#include <penne/redis/connection.hpp>
#include <penne/redis/error.hpp>

#include "redis_peer.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <gtest/gtest.h>

#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

namespace penne::redis::test {

namespace asio = boost::asio;
using penne::test::redis_peer;
using penne::test::redis_peer_options;

// Runs operations on one io_context, one at a time, to completion.
struct runner {
    asio::io_context ctx;

    error_code run(asio::awaitable<error_code> op) {
        std::optional<error_code> result;
        std::exception_ptr failure;
        asio::co_spawn(ctx, std::move(op), [&](std::exception_ptr e, error_code ec) {
            failure = e;
            result = ec;
        });
        ctx.restart();
        ctx.run();
        if (failure)
            std::rethrow_exception(failure);
        if (!result)
            throw std::runtime_error("operation did not complete");
        return *result;
    }
};

inline connection_options options_for(const std::string& url) {
    connection_options o;
    diagnostics diag;
    if (parse_url(url, o.server, diag))
        throw std::runtime_error(diag.message);
    o.connect_timeout = std::chrono::seconds(5);
    o.command_timeout = std::chrono::seconds(5);
    return o;
}

// One command on `conn`, returning the reply; fails the test on an error.
inline value must_call(runner& r, connection& conn, request req) {
    value reply;
    diagnostics diag;
    auto ec = r.run(conn.call(req, reply, diag));
    EXPECT_FALSE(ec) << ec.message() << ": " << diag.message;
    return reply;
}

}  // namespace penne::redis::test
