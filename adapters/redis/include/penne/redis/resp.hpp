#pragma once
// RESP2, sans-io: encoding commands and parsing replies, with hiredis as the codec
// (redisFormatCommandArgv to encode, redisReader to parse). No sockets here; the
// connection feeds the parser whatever bytes arrive, split anywhere.
//
// - value: one reply as a tree (nil, integer, status, error, bulk string, array).
// - request: a pipeline of encoded commands, written to the socket in one go; the server
//   answers with one reply per command, in order.
// - reply_parser: an incremental parser; feed() bytes, then take complete replies with
//   next(). A protocol violation poisons the parser (the stream cannot be resynchronised;
//   the connection must be closed).
//
// Thread safety: none; each object belongs to one connection (or one test). Lifetimes:
// values own their data; request owns its bytes.

#include <penne/error.hpp>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace penne::redis {

enum class value_kind { nil, integer, status, error, bulk, array };

struct value {
    value_kind kind = value_kind::nil;
    std::int64_t integer = 0;     // integer replies
    std::string text;             // status, error and bulk replies
    std::vector<value> elements;  // array replies (a nil array is kind nil)

    bool is_nil() const noexcept { return kind == value_kind::nil; }
    bool is_error() const noexcept { return kind == value_kind::error; }
    // "OK" status, or the status text given.
    bool is_status(std::string_view s = "OK") const noexcept {
        return kind == value_kind::status && text == s;
    }

    friend bool operator==(const value&, const value&) = default;
};

// A readable one-line rendering for diagnostics and test failures ("[1, \"a\", nil]").
std::string to_string(const value& v);

// The RESP encoding of one command (an array of bulk strings).
std::string encode_command(std::span<const std::string_view> argv);
// Appends the encoding of one command to `out`.
void append_command(std::string& out, std::span<const std::string_view> argv);

// A pipeline of commands for one round trip.
class request {
public:
    request() = default;
    explicit request(std::initializer_list<std::string_view> argv) { push(argv); }

    void push(std::initializer_list<std::string_view> argv);
    void push(std::span<const std::string_view> argv);
    void push(std::span<const std::string> argv);

    // The number of commands, hence of replies to read.
    std::size_t size() const noexcept { return count_; }
    bool empty() const noexcept { return count_ == 0; }
    const std::string& payload() const noexcept { return payload_; }
    void clear() noexcept {
        payload_.clear();
        count_ = 0;
    }

    // Whether sending it twice is harmless (a read, or a write whose second application
    // changes nothing). A connection resends an idempotent request after the connection
    // broke mid-way; others fail with the network error, since their outcome is unknown.
    bool idempotent = false;

private:
    std::string payload_;
    std::size_t count_ = 0;
};

class reply_parser {
public:
    reply_parser();
    ~reply_parser();
    reply_parser(reply_parser&&) noexcept;
    reply_parser& operator=(reply_parser&&) noexcept;

    // Adds bytes received from the server. Fails (penne::errc::protocol_error) only when
    // the parser is already poisoned.
    error_code feed(std::string_view bytes);
    // Moves the next complete reply into `out` and returns true; returns false when no
    // complete reply is buffered yet, or on a protocol error (then `ec` is
    // penne::errc::protocol_error and `error_text()` says why).
    bool next(value& out, error_code& ec);
    // hiredis's description of the protocol error, empty when there is none.
    std::string error_text() const;
    // Forgets buffered bytes and any error (for a fresh connection).
    void reset();

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace penne::redis
