#include "connection.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

namespace mongosim {
namespace {
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
// Buffers above this are released after use so idle connections stay small.
constexpr std::size_t keep_buffer = 1024 * 1024;
// Replies to the handshake and to authentication stay uncompressed whatever the request used:
// the client may not have negotiated compression yet, and auth traffic must not leak through
// compression side channels.
bool reply_may_be_compressed(const request& req) {
    bson_iter_t it;
    if (!bson_iter_init(&it, req.command.get()) || !bson_iter_next(&it))
        return true;
    static constexpr std::string_view never[] = {
        "hello",        "isMaster",   "ismaster",   "saslStart",       "saslContinue",   "getnonce",
        "authenticate", "createUser", "updateUser", "copydbSaslStart", "copydbgetnonce", "copydb"};
    const std::string_view name = key_of(it);
    return std::find(std::begin(never), std::end(never), name) == std::end(never);
}

// An awaitable hello (topologyVersion + maxAwaitTimeMS) from a client that allows exhaust:
// a successful reply goes out with moreToCome and the server keeps answering, each time the
// topology changes or maxAwaitTimeMS passes, without further requests (the streaming
// protocol of the SDAM monitoring spec).
bool streams_hello(const request& req, const bson_t& reply) {
    if (req.legacy || !req.exhaust_allowed())
        return false;
    bson_iter_t it;
    if (!bson_iter_init(&it, req.command.get()) || !bson_iter_next(&it))
        return false;
    const std::string_view name = key_of(it);
    if (name != "hello" && name != "isMaster" && name != "ismaster")
        return false;
    if (!bson_has_field(req.command.get(), "topologyVersion") ||
        !bson_has_field(req.command.get(), "maxAwaitTimeMS"))
        return false;
    return bson_iter_init_find(&it, &reply, "ok") && bson_iter_as_double(&it) == 1.0 &&
           bson_has_field(&reply, "topologyVersion");
}

// The request the next streamed reply answers: the same hello with the topologyVersion just
// sent, "sent" as the reply `reply_id` (the next reply's responseTo).
request next_streamed_hello(const request& req, const bson_t& reply, std::int32_t reply_id) {
    request next;
    next.header = req.header;
    next.header.request_id = reply_id;
    next.flags = req.flags;
    next.db = req.db;
    next.compressed_with = req.compressed_with;
    next.command = make_bson();
    bson_iter_t it;
    if (bson_iter_init(&it, req.command.get())) {
        while (bson_iter_next(&it)) {
            if (key_of(it) != "topologyVersion")
                bson_append_iter(next.command.get(), nullptr, 0, &it);
        }
    }
    if (bson_iter_init_find(&it, &reply, "topologyVersion"))
        bson_append_iter(next.command.get(), nullptr, 0, &it);
    return next;
}

}  // namespace

shared_state::shared_state(asio::any_io_executor ex, server_options opts)
    : processor(opts), options(std::move(opts)) {
    for (std::size_t i = 0; i < processor.member_count(); ++i)
        acceptors.emplace_back(ex);
}

static void trace(const char* dir, std::int64_t conn, const bson_t& doc) {
    char* json = bson_as_relaxed_extended_json(&doc, nullptr);
    std::fprintf(stderr, "mongosim [conn%lld] %s %s\n", static_cast<long long>(conn), dir,
                 json != nullptr ? json : "<unprintable>");
    bson_free(json);
}

void shared_state::notify_oplog() {
    for (auto* t : oplog_waiters)
        t->cancel();
}

void shared_state::topology_changed(std::size_t old_primary) {
    for (auto* t : topology_waiters)
        t->cancel();
    for (auto* c : connections)
        if (c->member() == old_primary)
            c->wake_for_step_down();
}

connection::connection(std::shared_ptr<shared_state> state, asio::ip::tcp::socket socket,
                       std::size_t member)
    : state_(std::move(state)), socket_(std::move(socket)), timer_(socket_.get_executor()) {
    client_.connection_id = state_->next_connection_id++;
    client_.member = member;
    auto& net = state_->processor.network();
    ++net.connections_current;
    ++net.connections_total;
}

connection::~connection() {
    --state_->processor.network().connections_current;
}

void connection::close() {
    boost::system::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    timer_.cancel();
}

void connection::wake_for_step_down() {
    timer_.cancel();
}

template <class Buffers>
asio::awaitable<std::tuple<error_code, std::size_t>> connection::read(const Buffers& buffers) {
    if (tls_)
        co_return co_await asio::async_read(*tls_, buffers, use_tuple);
    co_return co_await asio::async_read(socket_, buffers, use_tuple);
}

template <class Buffers>
asio::awaitable<std::tuple<error_code, std::size_t>> connection::write(const Buffers& buffers) {
    if (tls_)
        co_return co_await asio::async_write(*tls_, buffers, use_tuple);
    co_return co_await asio::async_write(socket_, buffers, use_tuple);
}

asio::awaitable<bool> connection::start_tls() {
    tls_.emplace(socket_, *state_->tls);
    auto [ec] = co_await tls_->async_handshake(asio::ssl::stream_base::server, use_tuple);
    if (!ec)
        co_return true;
    // The handshake's last flight carried an alert saying why (unknown CA, certificate
    // required, …). Closing at once with client bytes unread would answer with a reset that
    // can overtake it, so stop sending, drain what the client still sends for a moment and
    // only then close.
    if (state_->options.trace)
        std::fprintf(stderr, "mongosim [conn%lld] TLS handshake failed: %s\n",
                     static_cast<long long>(client_.connection_id), ec.message().c_str());
    boost::system::error_code ignored;
    socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    asio::steady_timer linger(socket_.get_executor(), std::chrono::seconds(2));
    linger.async_wait([self = shared_from_this()](boost::system::error_code tec) {
        if (!tec)
            self->close();
    });
    std::array<std::uint8_t, 4096> sink;
    for (;;) {
        auto [rec, n] = co_await socket_.async_read_some(asio::buffer(sink), use_tuple);
        if (rec)
            break;
    }
    linger.cancel();
    co_return false;
}

asio::awaitable<void> connection::run() {
    auto self = shared_from_this();
    state_->connections.insert(this);
    if (state_->tls) {
        // g++ 12 miscompiles co_await inside an if condition: keep it a statement.
        const bool ok = co_await start_tls();
        if (!ok) {
            state_->connections.erase(this);
            close();
            co_return;
        }
    }
    std::vector<std::uint8_t> buffer;
    for (;;) {
        std::array<std::uint8_t, header_size> head;
        auto [ec, n] = co_await read(asio::buffer(head));
        if (ec)
            break;
        message_header h;
        if (decode_header(head, h))
            break;
        buffer.resize(static_cast<std::size_t>(h.length));
        std::memcpy(buffer.data(), head.data(), header_size);
        auto [ec2, n2] =
            co_await read(asio::buffer(buffer.data() + header_size, buffer.size() - header_size));
        if (ec2)
            break;
        request req;
        if (decode_request(buffer, req))
            break;  // malformed: close, as mongod does
        auto& net = state_->processor.network();
        net.bytes_in += h.length;
        ++net.requests;
        if (req.compressed_with) {
            auto& codec = net.by_compressor[static_cast<int>(*req.compressed_with)];
            codec.decompressor_in += h.length;
            codec.decompressor_out += req.header.length;
        }
        if (buffer.capacity() > keep_buffer)
            std::vector<std::uint8_t>().swap(buffer);
        // g++ 12 miscompiles co_await inside an if condition: keep it a statement.
        const bool keep_open = co_await serve(req);
        if (!keep_open)
            break;
    }
    state_->connections.erase(this);
    close();
}

asio::awaitable<bool> connection::serve(const request& first) {
    const request* current = &first;
    request streamed;  // the implicit next request of an exhaust hello stream
    exec_context ctx;
    for (;;) {
        const request& req = *current;
        if (state_->stopping || !socket_.is_open())
            co_return false;
        if (state_->options.trace && !ctx.deadline && !ctx.failpoint_checked)
            trace(req.legacy ? "<< (OP_QUERY)" : "<<", client_.connection_id, *req.command);
        const auto before = state_->processor.log().end_seq();
        outcome out = state_->processor.execute(req, client_, ctx);
        if (state_->processor.log().end_seq() != before)
            state_->notify_oplog();
        if (auto old = state_->processor.take_step_down())
            state_->topology_changed(*old);
        switch (out.what) {
            case outcome::kind::close:
                co_return false;
            case outcome::kind::none:
                co_return true;
            case outcome::kind::reply: {
                if (state_->options.trace)
                    trace(">>", client_.connection_id, *out.reply);
                const std::int32_t id = state_->next_request_id++;
                const bool stream = streams_hello(req, *out.reply);
                auto bytes = req.legacy ? encode_legacy_reply(id, req.header.request_id, *out.reply)
                                        : encode_msg_reply(id, req.header.request_id, *out.reply,
                                                           stream ? flag_more_to_come : 0);
                auto& net = state_->processor.network();
                if (req.compressed_with && *req.compressed_with != compressor::noop &&
                    reply_may_be_compressed(req)) {
                    const auto plain = bytes.size();
                    bytes = encode_compressed(bytes, *req.compressed_with);
                    auto& codec = net.by_compressor[static_cast<int>(*req.compressed_with)];
                    codec.compressor_in += static_cast<std::int64_t>(plain);
                    codec.compressor_out += static_cast<std::int64_t>(bytes.size());
                }
                net.bytes_out += static_cast<std::int64_t>(bytes.size());
                auto [ec, n] = co_await write(asio::buffer(bytes));
                if (ec)
                    co_return false;
                if (!stream)
                    co_return true;
                request next = next_streamed_hello(req, *out.reply, id);
                streamed = std::move(next);
                current = &streamed;
                ctx = exec_context{};
                break;
            }
            case outcome::kind::wait_oplog:
            case outcome::kind::wait_topology:
            case outcome::kind::sleep: {
                timer_.expires_at(out.until);
                const bool oplog = out.what == outcome::kind::wait_oplog;
                const bool topology = out.what == outcome::kind::wait_topology;
                if (oplog)
                    state_->oplog_waiters.insert(&timer_);
                if (topology)
                    state_->topology_waiters.insert(&timer_);
                co_await timer_.async_wait(use_tuple);
                if (oplog)
                    state_->oplog_waiters.erase(&timer_);
                if (topology)
                    state_->topology_waiters.erase(&timer_);
                break;  // woken by an event, stop() or the deadline: execute again
            }
        }
    }
}

}  // namespace mongosim
