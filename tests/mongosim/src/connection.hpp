#pragma once
// One client connection: reads whole messages, hands them to the command processor and writes
// the replies, one request at a time (as mongod does per connection). Waiting outcomes park
// the coroutine on a timer that a new oplog entry or stop() cancels. A reply goes back in
// OP_COMPRESSED with the request's compressor, except for the handshake and authentication
// commands, whose replies are always plain.
//
// Memory per connection is bounded: one request buffer (at most maxMessageSizeBytes, released
// after large messages) and one reply.
//
// Thread safety: runs on the server's single-threaded executor. Lifetimes: the coroutine holds
// a shared_ptr to itself and to the shared server state.

#include "commands.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include <memory>
#include <unordered_set>

namespace mongosim {

class connection;

struct shared_state {
    shared_state(asio::any_io_executor ex, server_options opts, std::string advertised);

    void notify_oplog();

    asio::ip::tcp::acceptor acceptor;
    command_processor processor;
    server_options options;
    std::unordered_set<connection*> connections;
    std::unordered_set<asio::steady_timer*> oplog_waiters;
    std::int64_t next_connection_id = 1;
    std::int32_t next_request_id = 1;
    bool stopping = false;
};

class connection : public std::enable_shared_from_this<connection> {
public:
    connection(std::shared_ptr<shared_state> state, asio::ip::tcp::socket socket);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    asio::awaitable<void> run();
    void close();

private:
    asio::awaitable<bool> serve(const request& req);

    std::shared_ptr<shared_state> state_;
    asio::ip::tcp::socket socket_;
    asio::steady_timer timer_;
    client_info client_;
};

}  // namespace mongosim
