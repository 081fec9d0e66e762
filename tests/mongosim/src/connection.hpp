#pragma once
// One client connection: reads whole messages, hands them to the command processor and writes
// the replies, one request at a time (as mongod does per connection). Waiting outcomes park
// the coroutine on a timer that a new oplog entry or stop() cancels. A reply goes back in
// OP_COMPRESSED with the request's compressor, except for the handshake and authentication
// commands, whose replies are always plain. When the server has TLS, the connection first
// completes a TLS handshake (and, on failure, lingers briefly so the client reads the
// alert instead of a reset), then every byte goes through the TLS stream.
//
// Memory per connection is bounded: one request buffer (at most maxMessageSizeBytes, released
// after large messages) and one reply.
//
// On a step-down the old primary's connections stay open, as mongod's do since 4.2: a request
// parked on one (a blocking fail point, an awaitData getMore) runs again at once and answers as
// the member now does (a write: NotWritablePrimary, labelled so the driver retries it; a
// getMore goes on, its cursor outlives the election), and so do later requests.
//
// Thread safety: runs on the server's single-threaded executor. Lifetimes: the coroutine holds
// a shared_ptr to itself and to the shared server state.

#include "commands.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <optional>
#include <tuple>
#include <unordered_set>

namespace mongosim {

class connection;

struct shared_state {
    shared_state(asio::any_io_executor ex, server_options opts);

    void notify_oplog();
    // After a step-down: wakes awaitable hellos and every request parked on a connection to
    // the old primary.
    void topology_changed(std::size_t old_primary);

    std::vector<asio::ip::tcp::acceptor> acceptors;  // one per replica set member
    std::optional<asio::ssl::context> tls;           // set by listen() when TLS is configured
    command_processor processor;
    server_options options;
    std::unordered_set<connection*> connections;
    std::unordered_set<asio::steady_timer*> oplog_waiters;
    std::unordered_set<asio::steady_timer*> topology_waiters;
    std::optional<asio::steady_timer> step_down_timer;  // --step-down-every
    std::int64_t next_connection_id = 1;
    std::int32_t next_request_id = 1;
    bool stopping = false;
};

class connection : public std::enable_shared_from_this<connection> {
public:
    connection(std::shared_ptr<shared_state> state, asio::ip::tcp::socket socket,
               std::size_t member);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    asio::awaitable<void> run();
    void close();
    // The member stepped down: a request parked on this connection runs again at once and
    // answers as the member now does (NotWritablePrimary, NotPrimaryNoSecondaryOk).
    void wake_for_step_down();
    std::size_t member() const noexcept { return client_.member; }

private:
    asio::awaitable<bool> serve(const request& req);
    // The TLS handshake; false (after lingering) when it failed.
    asio::awaitable<bool> start_tls();
    template <class Buffers>
    asio::awaitable<std::tuple<error_code, std::size_t>> read(const Buffers& buffers);
    template <class Buffers>
    asio::awaitable<std::tuple<error_code, std::size_t>> write(const Buffers& buffers);

    std::shared_ptr<shared_state> state_;
    asio::ip::tcp::socket socket_;
    // Over socket_ when the server has TLS; destroyed with the connection, after every
    // operation on it finished (close() only closes the socket).
    std::optional<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
    asio::steady_timer timer_;
    client_info client_;
};

}  // namespace mongosim
