// penne::mongo::change_stream over real sockets against a scripted peer: each test says
// what the "server" answers to each command, then checks what the client sent and did.

#include <penne/mongo/change_stream.hpp>
#include <penne/mongo/wire.hpp>

#include <gtest/gtest.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <exception>
#include <functional>
#include <list>
#include <optional>
#include <string>
#include <vector>

// gtest's ASSERT_* return void, which a coroutine cannot; this stops the coroutine.
#define CO_ASSERT_EQ(a, b) \
    do {                   \
        EXPECT_EQ(a, b);   \
        if (!((a) == (b))) \
            co_return;     \
    } while (0)

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using asio::awaitable;
using penne::mongo::document;
using tcp = asio::ip::tcp;

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

document json(const std::string& s) {
    std::string err;
    auto d = document::from_json(s, err);
    EXPECT_TRUE(d) << err << ": " << s;
    return d ? std::move(*d) : document{};
}

std::string event_json(int i) {
    return R"({"_id": {"_data": "T)" + std::to_string(i) +
           R"("}, "operationType": "insert", "ns": {"db": "d", "coll": "c"},
              "clusterTime": {"$timestamp": {"t": 100, "i": )" +
           std::to_string(i) + R"(}}, "documentKey": {"_id": )" + std::to_string(i) + "}}";
}

// An insert event carrying `pad` bytes of document.
std::string padded_event_json(int i, std::size_t pad) {
    std::string e = event_json(i);
    e.pop_back();
    return e + R"(, "fullDocument": {"_id": )" + std::to_string(i) + R"(, "pad": ")" +
           std::string(pad, 'x') + R"("}})";
}

std::string batch_reply(bool first, std::int64_t id, std::vector<int> events, std::string pbrt) {
    std::string arr;
    for (int e : events)
        arr += (arr.empty() ? "" : ",") + event_json(e);
    return R"({"cursor": {")" + std::string(first ? "firstBatch" : "nextBatch") + R"(": [)" + arr +
           R"(], "postBatchResumeToken": {"_data": ")" + pbrt + R"("}, "id": {"$numberLong": ")" +
           std::to_string(id) + R"("}, "ns": "d.c"}, "ok": 1})";
}

// A reply: a document, or "close the connection", or "never answer". A reply with a
// `piece` size is written that many bytes at a time, `pause` apart (a slow server).
struct action {
    enum kind { reply, close, hang } what = reply;
    std::string body;
    std::size_t piece = 0;
    std::chrono::milliseconds pause{0};
};
action answer(std::string body) {
    return {action::reply, std::move(body)};
}

struct received {
    int connection;
    std::string name;
    std::string json;
};

class scripted_server {
public:
    using script = std::function<action(const received&)>;

    scripted_server(asio::io_context& io, script s)
        : io_(io), acceptor_(io, {asio::ip::make_address("127.0.0.1"), 0}), script_(std::move(s)) {
        asio::co_spawn(io_, accept_loop(), asio::detached);
    }
    std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
    std::string address() const { return "127.0.0.1:" + std::to_string(port()); }
    void stop() {
        boost::system::error_code ec;
        acceptor_.close(ec);
        for (auto& s : sockets_)
            s.close(ec);
    }
    std::vector<received> log;

    std::vector<received> commands(const std::string& name) const {
        std::vector<received> out;
        for (const auto& r : log)
            if (r.name == name)
                out.push_back(r);
        return out;
    }

private:
    awaitable<void> accept_loop() {
        for (int n = 0;; ++n) {
            auto [ec, s] = co_await acceptor_.async_accept(use_tuple);
            if (ec)
                co_return;
            auto& sock = sockets_.emplace_back(std::move(s));
            asio::co_spawn(io_, serve(sock, n), asio::detached);
        }
    }
    awaitable<void> serve(tcp::socket& sock, int conn) {
        penne::mongo::wire::frame_reader reader;
        std::vector<std::uint8_t> frame, out;
        for (;;) {
            while (!reader.ready()) {
                auto span = reader.prepare();
                auto [ec, n] = co_await sock.async_read_some(asio::buffer(span.data(), span.size()),
                                                             use_tuple);
                if (ec)
                    co_return;
                if (reader.commit(n))
                    co_return;
            }
            reader.take(frame);
            penne::mongo::wire::op_msg_view msg;
            if (penne::mongo::wire::decode_op_msg(frame, msg))
                co_return;
            bson_iter_t it;
            bson_iter_init_from_data(&it, msg.body.data(), msg.body.size());
            bson_iter_next(&it);
            received r{conn, bson_iter_key(&it), penne::mongo::to_json(msg.body)};
            log.push_back(r);
            action a = script_(r);
            if (a.what == action::close) {
                boost::system::error_code ignored;
                sock.close(ignored);
                co_return;
            }
            if (a.what == action::hang)
                continue;
            auto body = json(a.body);
            out.clear();
            penne::mongo::wire::encode_op_msg(out, 1000 + conn, 0, body.bytes());
            std::int32_t to = msg.header.request_id;
            for (int i = 0; i < 4; ++i)
                out[8 + i] = static_cast<std::uint8_t>(to >> (8 * i));
            const std::size_t piece = a.piece ? a.piece : out.size();
            for (std::size_t at = 0; at < out.size(); at += piece) {
                if (at && a.pause.count()) {
                    asio::steady_timer t(io_, a.pause);
                    co_await t.async_wait(use_tuple);
                }
                auto [wec, w] = co_await asio::async_write(
                    sock, asio::buffer(out.data() + at, std::min(piece, out.size() - at)),
                    use_tuple);
                if (wec)
                    co_return;
            }
        }
    }

    asio::io_context& io_;
    tcp::acceptor acceptor_;
    script script_;
    std::list<tcp::socket> sockets_;
};

std::string primary_hello(const std::string& me) {
    return R"({"helloOk": true, "isWritablePrimary": true, "setName": "rs0", "hosts": [")" + me +
           R"("], "primary": ")" + me + R"(", "me": ")" + me +
           R"(", "maxWireVersion": 17, "minWireVersion": 0, "maxMessageSizeBytes": 48000000,
              "ok": 1})";
}

std::shared_ptr<const penne::mongo::stream_config> config(
    const std::string& uri, int attempts = 3,
    std::chrono::milliseconds socket_timeout = std::chrono::milliseconds(300)) {
    penne::mongo::source_options o;
    o.uri = uri;
    o.max_await = 200ms;
    o.connect_timeout = 1s;
    o.socket_timeout = socket_timeout;
    o.max_resume_attempts = attempts;
    o.reconnect_initial = 10ms;
    auto cfg = std::make_shared<penne::mongo::stream_config>();
    penne::diagnostics d;
    EXPECT_FALSE(penne::mongo::prepare(o, *cfg, d)) << d.message;
    return cfg;
}

void run(asio::io_context& io, std::function<awaitable<void>()> body) {
    std::exception_ptr failure;
    bool done = false;
    asio::co_spawn(io, body(), [&](std::exception_ptr e) {
        failure = e;
        done = true;
        io.stop();
    });
    io.run_for(20s);
    ASSERT_TRUE(done) << "test coroutine did not finish";
    if (failure)
        std::rethrow_exception(failure);
}

penne::watch_scope coll_scope() {
    return {penne::watch_scope::level::collection, "d", "c"};
}

TEST(ScriptedServer, OpenNextCloseCommandShapes) {
    asio::io_context io;
    int getmores = 0;
    scripted_server* self = nullptr;
    scripted_server srv(io, [&](const received& r) -> action {
        if (r.name == "hello")
            return answer(primary_hello(self->address()));
        if (r.name == "aggregate")
            return answer(batch_reply(true, 7, {1}, "P1"));
        if (r.name == "getMore")
            return answer(++getmores == 1 ? batch_reply(false, 7, {2, 3}, "P3")
                                          : batch_reply(false, 7, {}, "P4"));
        return answer(R"({"ok": 1})");
    });
    self = &srv;
    run(io, [&]() -> awaitable<void> {
        penne::mongo::change_stream cs(io.get_executor(), coll_scope(),
                                       config("mongodb://" + srv.address() + "/?appName=t1"));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_FALSE(ec) << d.message;
        penne::event_batch b;
        // The aggregate's firstBatch comes first.
        ec = co_await cs.next(b, d);
        EXPECT_FALSE(ec) << d.message;
        EXPECT_EQ(b.events.size(), 1u);
        EXPECT_EQ(penne::mongo::to_json(b.post_batch_token.bytes()), R"({ "_data" : "P1" })");
        ec = co_await cs.next(b, d);
        EXPECT_FALSE(ec) << d.message;
        CO_ASSERT_EQ(b.events.size(), 2u);
        EXPECT_EQ(b.events[1].operation, "insert");
        EXPECT_EQ(b.events[1].coll, "c");
        EXPECT_EQ(b.events[1].time, (penne::cluster_time{100, 3}));
        // Views point into the batch's own storage.
        EXPECT_GE(b.events[0].raw.data(), b.storage.data());
        EXPECT_LE(b.events[1].raw.data() + b.events[1].raw.size(),
                  b.storage.data() + b.storage.size());
        EXPECT_EQ(penne::mongo::to_json(b.post_batch_token.bytes()), R"({ "_data" : "P3" })");
        ec = co_await cs.next(b, d);
        EXPECT_FALSE(ec) << d.message;
        EXPECT_TRUE(b.events.empty());
        EXPECT_EQ(penne::mongo::to_json(b.post_batch_token.bytes()), R"({ "_data" : "P4" })");
        co_await cs.close();
    });
    auto hello = srv.commands("hello");
    ASSERT_EQ(hello.size(), 1u);
    EXPECT_NE(hello[0].json.find(R"("driver" : { "name" : "penne")"), std::string::npos);
    EXPECT_NE(hello[0].json.find(R"("application" : { "name" : "t1" })"), std::string::npos);
    auto agg = srv.commands("aggregate");
    ASSERT_EQ(agg.size(), 1u);
    // Wire version 17+: the split stage is appended, last (split_large_events by default).
    EXPECT_NE(agg[0].json.find(R"("aggregate" : "c", "pipeline" : [ { "$changeStream" : {  } }, )"
                               R"({ "$changeStreamSplitLargeEvent" : {  } } ])"),
              std::string::npos)
        << agg[0].json;
    // The first batch came with the aggregate; each batch returned sent the next getMore
    // ahead (prefetch), so three went out for two answered, and close() read the third's
    // reply before killing the cursor.
    auto gm = srv.commands("getMore");
    ASSERT_EQ(gm.size(), 3u);
    EXPECT_EQ(gm[0].json,
              R"({ "getMore" : 7, "collection" : "c", "maxTimeMS" : 200, "$db" : "d" })");
    auto kc = srv.commands("killCursors");
    ASSERT_EQ(kc.size(), 1u);
    EXPECT_EQ(kc[0].json, R"({ "killCursors" : "c", "cursors" : [ 7 ], "$db" : "d" })");
    EXPECT_EQ(srv.log.back().name, "killCursors");
}

// With prefetch (the default) the next getMore is on the wire as soon as a batch is
// returned, before the caller asks for it; without, only when next() is called.
TEST(ScriptedServer, PrefetchSendsTheNextGetMoreBeforeItIsAskedFor) {
    for (bool prefetch : {true, false}) {
        SCOPED_TRACE(prefetch ? "prefetch" : "no prefetch");
        asio::io_context io;
        int getmores = 0;
        scripted_server* self = nullptr;
        scripted_server srv(io, [&](const received& r) -> action {
            if (r.name == "hello")
                return answer(primary_hello(self->address()));
            if (r.name == "aggregate")
                return answer(batch_reply(true, 7, {}, "P0"));
            if (r.name == "getMore") {
                ++getmores;
                return answer(batch_reply(false, 7, {2 * getmores, 2 * getmores + 1},
                                          "P" + std::to_string(2 * getmores + 1)));
            }
            return answer(R"({"ok": 1})");
        });
        self = &srv;
        run(io, [&]() -> awaitable<void> {
            penne::mongo::source_options o;
            o.uri = "mongodb://" + srv.address();
            o.max_await = 200ms;
            o.socket_timeout = 300ms;
            o.prefetch = prefetch;
            auto cfg = std::make_shared<penne::mongo::stream_config>();
            penne::diagnostics d;
            EXPECT_FALSE(penne::mongo::prepare(o, *cfg, d)) << d.message;
            penne::mongo::change_stream cs(io.get_executor(), coll_scope(), cfg);
            auto ec = co_await cs.open({}, d);
            EXPECT_FALSE(ec) << d.message;
            penne::event_batch b;
            std::vector<int> seen;
            for (int i = 0; i < 3; ++i) {
                ec = co_await cs.next(b, d);
                EXPECT_FALSE(ec) << d.message;
                for (const auto& e : b.events)
                    seen.push_back(static_cast<int>(e.time.increment));
                // Give the server time to read whatever is on the wire.
                asio::steady_timer t(io, 50ms);
                co_await t.async_wait(use_tuple);
                EXPECT_EQ(srv.commands("getMore").size(), std::size_t(prefetch ? i + 1 : i));
            }
            // Every event once, in order: the prefetched replies are delivered, not skipped.
            EXPECT_EQ(seen, (std::vector<int>{2, 3, 4, 5}));
            EXPECT_EQ(penne::mongo::to_json(cs.cached_token().bytes()), R"({ "_data" : "P5" })");
            co_await cs.close();
        });
        // close() answers for the outstanding getMore first, then kills the cursor.
        EXPECT_EQ(srv.log.back().name, "killCursors");
        EXPECT_EQ(srv.commands("getMore").size(), prefetch ? 3u : 2u);
    }
}

TEST(ScriptedServer, ResumableErrorResumesFromCachedToken) {
    asio::io_context io;
    int getmores = 0;
    scripted_server* self = nullptr;
    scripted_server srv(io, [&](const received& r) -> action {
        if (r.name == "hello")
            return answer(primary_hello(self->address()));
        // Like a real server, a resumed aggregate reports the position it resumed at.
        if (r.name == "aggregate")
            return answer(batch_reply(true, 8 + r.connection, {}, r.connection == 0 ? "A" : "B2"));
        if (r.name == "getMore") {
            ++getmores;
            if (getmores == 1)
                return answer(batch_reply(false, 8, {1, 2}, "B2"));
            if (getmores == 2)
                return answer(R"({"ok": 0, "code": 10107, "codeName": "NotWritablePrimary",
                    "errmsg": "not primary", "errorLabels": ["ResumableChangeStreamError"]})");
            if (getmores == 3)
                return {action::close, {}};  // then a network error
            return answer(batch_reply(false, 8 + r.connection, {3}, "B3"));
        }
        return answer(R"({"ok": 1})");
    });
    self = &srv;
    run(io, [&]() -> awaitable<void> {
        penne::mongo::change_stream cs(io.get_executor(), coll_scope(),
                                       config("mongodb://" + srv.address()));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_FALSE(ec) << d.message;
        penne::event_batch b;
        {
            // open()'s own batch comes first, empty here: the stream's starting position.
            auto first = co_await cs.next(b, d);
            EXPECT_FALSE(first) << d.message;
            EXPECT_TRUE(b.events.empty());
        }
        ec = co_await cs.next(b, d);
        EXPECT_FALSE(ec) << d.message;
        EXPECT_EQ(b.events.size(), 2u);
        ec = co_await cs.next(b, d);
        EXPECT_FALSE(ec) << d.message;
        CO_ASSERT_EQ(b.events.size(), 1u);
        EXPECT_EQ(penne::mongo::to_json(b.events[0].token), R"({ "_data" : "T3" })");
        EXPECT_EQ(cs.resume_count(), 2u);
        co_await cs.close();
    });
    auto agg = srv.commands("aggregate");
    ASSERT_EQ(agg.size(), 3u);
    EXPECT_EQ(agg[0].json.find("resumeAfter"), std::string::npos);
    for (int i = 1; i < 3; ++i) {
        EXPECT_NE(agg[i].json.find(R"("resumeAfter" : { "_data" : "B2" })"), std::string::npos)
            << agg[i].json;
    }
    // The cursor of the server-side failure was killed before resuming.
    auto kc = srv.commands("killCursors");
    ASSERT_GE(kc.size(), 1u);
    EXPECT_NE(kc[0].json.find("[ 8 ]"), std::string::npos);
}

TEST(ScriptedServer, TimeoutThenResume) {
    asio::io_context io;
    int getmores = 0;
    scripted_server* self = nullptr;
    scripted_server srv(io, [&](const received& r) -> action {
        if (r.name == "hello")
            return answer(primary_hello(self->address()));
        if (r.name == "aggregate")
            return answer(batch_reply(true, 5, {}, "A"));
        if (r.name == "getMore") {
            if (++getmores == 1)
                return {action::hang, {}};
            return answer(batch_reply(false, 5, {9}, "Z"));
        }
        return answer(R"({"ok": 1})");
    });
    self = &srv;
    run(io, [&]() -> awaitable<void> {
        penne::mongo::change_stream cs(io.get_executor(), coll_scope(),
                                       config("mongodb://" + srv.address()));
        penne::diagnostics d;
        {
            auto r = co_await cs.open({}, d);
            EXPECT_FALSE(r) << d.message;
        }
        penne::event_batch b;
        {
            // open()'s own batch comes first, empty here: the stream's starting position.
            auto first = co_await cs.next(b, d);
            EXPECT_FALSE(first) << d.message;
            EXPECT_TRUE(b.events.empty());
        }
        auto start = std::chrono::steady_clock::now();
        auto ec = co_await cs.next(b, d);
        EXPECT_FALSE(ec) << d.message;
        EXPECT_EQ(b.events.size(), 1u);
        // max_await 200ms + socket_timeout 300ms before the hung getMore is abandoned.
        EXPECT_GE(std::chrono::steady_clock::now() - start, 450ms);
        EXPECT_EQ(cs.resume_count(), 1u);
        co_await cs.close();
    });
}

TEST(ScriptedServer, ErrorsThatEndTheStream) {
    for (auto [code, expect_lost] : {std::pair{286, true}, std::pair{2, false}}) {
        asio::io_context io;
        scripted_server* self = nullptr;
        scripted_server srv(io, [&, code = code](const received& r) -> action {
            if (r.name == "hello")
                return answer(primary_hello(self->address()));
            if (r.name == "aggregate")
                return answer(batch_reply(true, 5, {}, "A"));
            if (r.name == "getMore")
                return answer(R"({"ok": 0, "code": )" + std::to_string(code) +
                              R"(, "codeName": "X", "errmsg": "boom"})");
            return answer(R"({"ok": 1})");
        });
        self = &srv;
        run(io, [&, code = code, expect_lost = expect_lost]() -> awaitable<void> {
            penne::mongo::change_stream cs(io.get_executor(), coll_scope(),
                                           config("mongodb://" + srv.address()));
            penne::diagnostics d;
            {
                auto r = co_await cs.open({}, d);
                EXPECT_FALSE(r) << d.message;
            }
            penne::event_batch b;
            {
                // open()'s own batch comes first, empty here: the stream's starting position.
                auto first = co_await cs.next(b, d);
                EXPECT_FALSE(first) << d.message;
                EXPECT_TRUE(b.events.empty());
            }
            auto ec = co_await cs.next(b, d);
            if (expect_lost) {
                EXPECT_EQ(ec, penne::errc::history_lost);
            } else {
                EXPECT_EQ(ec, penne::mongo::make_server_error(code));
                EXPECT_TRUE(penne::is_fatal(ec));
            }
            EXPECT_NE(d.message.find("boom"), std::string::npos) << d.message;
            EXPECT_EQ(cs.resume_count(), 0u);
            co_await cs.close();
        });
    }
}

TEST(ScriptedServer, FollowsPrimaryFromSecondary) {
    asio::io_context io;
    scripted_server* primary_ptr = nullptr;
    scripted_server primary(io, [&](const received& r) -> action {
        if (r.name == "hello")
            return answer(primary_hello(primary_ptr->address()));
        if (r.name == "aggregate")
            return answer(batch_reply(true, 5, {4}, "A"));
        return answer(R"({"ok": 1})");
    });
    primary_ptr = &primary;
    scripted_server secondary(io, [&](const received& r) -> action {
        if (r.name == "hello")
            return answer(R"({"helloOk": true, "isWritablePrimary": false, "secondary": true,
                "setName": "rs0", "primary": ")" +
                          primary.address() + R"(", "maxWireVersion": 17, "ok": 1})");
        return answer(R"({"ok": 0, "code": 10107, "errmsg": "not primary"})");
    });
    run(io, [&]() -> awaitable<void> {
        penne::mongo::change_stream cs(
            io.get_executor(), coll_scope(),
            config("mongodb://" + secondary.address() + "/?replicaSet=rs0"));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_FALSE(ec) << d.message;
        penne::event_batch b;
        {
            auto r = co_await cs.next(b, d);
            EXPECT_FALSE(r) << d.message;
        }
        EXPECT_EQ(b.events.size(), 1u);
        co_await cs.close();
    });
    EXPECT_EQ(secondary.commands("aggregate").size(), 0u);
    EXPECT_EQ(primary.commands("aggregate").size(), 1u);
}

TEST(ScriptedServer, WrongReplicaSetIsNoPrimary) {
    asio::io_context io;
    scripted_server* self = nullptr;
    scripted_server srv(io, [&](const received& r) -> action {
        if (r.name == "hello")
            return answer(primary_hello(self->address()));
        return answer(R"({"ok": 1})");
    });
    self = &srv;
    run(io, [&]() -> awaitable<void> {
        penne::mongo::change_stream cs(io.get_executor(), coll_scope(),
                                       config("mongodb://" + srv.address() + "/?replicaSet=other"));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_EQ(ec, penne::mongo::client_errc::no_primary);
        EXPECT_NE(d.message.find("'rs0', not 'other'"), std::string::npos) << d.message;
    });
}

// ---- $changeStreamSplitLargeEvent ---------------------------------------------------------

// Fragment k of `of` of an update split by the server ("X" tokens), with its share of fields.
std::string fragment(int k, int of, const std::string& fields) {
    return R"({"_id": {"_data": "X)" + std::to_string(k) + R"("}, "splitEvent": {"fragment": )" +
           std::to_string(k) + R"(, "of": )" + std::to_string(of) + "}, " + fields + "}";
}
const std::string frag1 =
    fragment(1, 3, R"("operationType": "update", "ns": {"db": "d", "coll": "c"},
    "clusterTime": {"$timestamp": {"t": 100, "i": 9}}, "documentKey": {"_id": 9})");
const std::string frag2 = fragment(2, 3, R"("fullDocumentBeforeChange": {"_id": 9, "v": 1})");
const std::string frag3 = fragment(3, 3, R"("fullDocument": {"_id": 9, "v": 2})");

std::string raw_reply(bool first, std::int64_t id, const std::vector<std::string>& docs,
                      const std::string& pbrt) {
    std::string arr;
    for (const auto& d : docs)
        arr += (arr.empty() ? "" : ",") + d;
    return R"({"cursor": {")" + std::string(first ? "firstBatch" : "nextBatch") + R"(": [)" + arr +
           R"(], "postBatchResumeToken": {"_data": ")" + pbrt + R"("}, "id": {"$numberLong": ")" +
           std::to_string(id) + R"("}, "ns": "d.c"}, "ok": 1})";
}

std::string token_json(const penne::resume_token& t) {
    return penne::mongo::to_json(t.bytes());
}

TEST(ScriptedServer, SplitEventIsReassembledAcrossGetMores) {
    asio::io_context io;
    int getmores = 0;
    scripted_server* self = nullptr;
    scripted_server srv(io, [&](const received& r) -> action {
        if (r.name == "hello")
            return answer(primary_hello(self->address()));
        if (r.name == "aggregate")
            return answer(batch_reply(true, 7, {1}, "P1"));
        if (r.name == "getMore") {
            switch (++getmores) {
                case 1:
                    return answer(raw_reply(false, 7, {event_json(2), frag1}, "X1"));
                case 2:
                    return answer(raw_reply(false, 7, {frag2}, "X2"));
                case 3:
                    return answer(raw_reply(false, 7, {frag3, event_json(4)}, "P4"));
                default:
                    return answer(raw_reply(false, 7, {}, "P5"));
            }
        }
        return answer(R"({"ok": 1})");
    });
    self = &srv;
    run(io, [&]() -> awaitable<void> {
        penne::mongo::change_stream cs(io.get_executor(), coll_scope(),
                                       config("mongodb://" + srv.address()));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        CO_ASSERT_EQ(ec, penne::error_code{});
        penne::event_batch b;
        ec = co_await cs.next(b, d);  // the aggregate's first batch
        CO_ASSERT_EQ(ec, penne::error_code{});
        // Event 2 and the first fragment: only event 2 comes out, and the position stays at
        // event 2 (the token before the split event), not at the fragment's X1.
        ec = co_await cs.next(b, d);
        CO_ASSERT_EQ(ec, penne::error_code{});
        CO_ASSERT_EQ(b.events.size(), 1u);
        EXPECT_EQ(penne::mongo::to_json(b.events[0].token), R"({ "_data" : "T2" })");
        EXPECT_EQ(token_json(b.post_batch_token), R"({ "_data" : "T2" })");
        ec = co_await cs.next(b, d);  // the middle fragment: nothing yet
        CO_ASSERT_EQ(ec, penne::error_code{});
        EXPECT_TRUE(b.events.empty());
        EXPECT_EQ(token_json(b.post_batch_token), R"({ "_data" : "T2" })");
        EXPECT_EQ(token_json(cs.cached_token()), R"({ "_data" : "T2" })");
        ec = co_await cs.next(b, d);  // the last fragment and event 4
        CO_ASSERT_EQ(ec, penne::error_code{});
        CO_ASSERT_EQ(b.events.size(), 2u);
        const auto& whole = b.events[0];
        EXPECT_EQ(whole.operation, "update");
        EXPECT_EQ(whole.coll, "c");
        EXPECT_EQ(whole.time, (penne::cluster_time{100, 9}));
        EXPECT_EQ(penne::mongo::to_json(whole.token), R"({ "_data" : "X3" })");
        EXPECT_EQ(penne::mongo::to_json(whole.raw),
                  json(R"({"_id": {"_data": "X3"}, "operationType": "update",
                           "clusterTime": {"$timestamp": {"t": 100, "i": 9}},
                           "fullDocument": {"_id": 9, "v": 2}, "ns": {"db": "d", "coll": "c"},
                           "documentKey": {"_id": 9},
                           "fullDocumentBeforeChange": {"_id": 9, "v": 1}})")
                      .to_json());
        EXPECT_EQ(penne::mongo::to_json(b.events[1].token), R"({ "_data" : "T4" })");
        EXPECT_EQ(token_json(b.post_batch_token), R"({ "_data" : "P4" })");
        co_await cs.close();
    });
}

TEST(ScriptedServer, ResumeInsideASplitEventStartsItAgain) {
    asio::io_context io;
    int getmores = 0;
    scripted_server* self = nullptr;
    scripted_server srv(io, [&](const received& r) -> action {
        if (r.name == "hello")
            return answer(primary_hello(self->address()));
        if (r.name == "aggregate") {
            if (r.connection == 0)
                return answer(batch_reply(true, 7, {1}, "P1"));
            // The resumed stream (from before the split event) sends it from fragment 1.
            return answer(raw_reply(true, 8, {frag1, frag2, frag3}, "X3"));
        }
        if (r.name == "getMore") {
            if (++getmores == 1)
                return answer(raw_reply(false, 7, {frag1, frag2}, "X2"));
            if (getmores == 2)
                return {action::close, {}};  // a network error in the middle of the event
            return answer(raw_reply(false, 8, {}, "P9"));
        }
        return answer(R"({"ok": 1})");
    });
    self = &srv;
    run(io, [&]() -> awaitable<void> {
        penne::mongo::change_stream cs(io.get_executor(), coll_scope(),
                                       config("mongodb://" + srv.address()));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        CO_ASSERT_EQ(ec, penne::error_code{});
        penne::event_batch b;
        ec = co_await cs.next(b, d);
        CO_ASSERT_EQ(ec, penne::error_code{});
        ec = co_await cs.next(b, d);  // two of three fragments: held
        CO_ASSERT_EQ(ec, penne::error_code{});
        EXPECT_TRUE(b.events.empty());
        EXPECT_EQ(token_json(b.post_batch_token), R"({ "_data" : "P1" })");
        ec = co_await cs.next(b, d);  // network error, resume, the whole event
        CO_ASSERT_EQ(ec, penne::error_code{});
        CO_ASSERT_EQ(b.events.size(), 1u);
        EXPECT_EQ(b.events[0].operation, "update");
        EXPECT_EQ(penne::mongo::to_json(b.events[0].token), R"({ "_data" : "X3" })");
        EXPECT_EQ(cs.resume_count(), 1u);
        co_await cs.close();
    });
    auto agg = srv.commands("aggregate");
    ASSERT_EQ(agg.size(), 2u);
    // The resume starts before the split event, never from a fragment's token.
    EXPECT_NE(agg[1].json.find(R"("resumeAfter" : { "_data" : "P1" })"), std::string::npos)
        << agg[1].json;
}

TEST(ScriptedServer, ServerWithoutTheSplitStageIsAskedAgainWithoutIt) {
    // MongoDB 6.0.0-6.0.8 report wire version 17 but have no $changeStreamSplitLargeEvent.
    asio::io_context io;
    scripted_server* self = nullptr;
    scripted_server srv(io, [&](const received& r) -> action {
        if (r.name == "hello")
            return answer(primary_hello(self->address()));
        if (r.name == "aggregate") {
            if (r.json.find("$changeStreamSplitLargeEvent") != std::string::npos)
                return answer(R"({"ok": 0, "code": 40324, "codeName": "Location40324",
                    "errmsg": "Unrecognized pipeline stage name: '$changeStreamSplitLargeEvent'"})");
            return answer(batch_reply(true, 7, {1}, "P1"));
        }
        if (r.name == "getMore")
            return answer(raw_reply(false, 7, {}, "P2"));
        return answer(R"({"ok": 1})");
    });
    self = &srv;
    run(io, [&]() -> awaitable<void> {
        penne::mongo::change_stream cs(io.get_executor(), coll_scope(),
                                       config("mongodb://" + srv.address()));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        CO_ASSERT_EQ(ec, penne::error_code{});
        penne::event_batch b;
        ec = co_await cs.next(b, d);
        CO_ASSERT_EQ(ec, penne::error_code{});
        EXPECT_EQ(b.events.size(), 1u);
        co_await cs.close();
    });
    auto agg = srv.commands("aggregate");
    ASSERT_EQ(agg.size(), 2u);
    EXPECT_NE(agg[0].json.find("$changeStreamSplitLargeEvent"), std::string::npos);
    EXPECT_EQ(agg[1].json.find("$changeStreamSplitLargeEvent"), std::string::npos);
}

// Large replies are read in large pieces (the socket's low-water mark): whatever their size
// and however slowly the server writes them, each reply arrives whole, with no read waiting
// for bytes the reply does not have. The sizes straddle the mark's thresholds (64 KiB and
// 256 KiB of the reply left to read): 1 MiB, 150 KiB, 260 KiB, and 1 KiB.
TEST(ScriptedServer, LargeRepliesWrittenSlowlyArriveWhole) {
    asio::io_context io;
    const std::vector<int> sizes_kib = {1024, 150, 260, 1};
    int getmores = 0, next_event = 1;
    std::vector<int> sent;
    scripted_server* self = nullptr;
    scripted_server srv(io, [&](const received& r) -> action {
        if (r.name == "hello")
            return answer(primary_hello(self->address()));
        if (r.name == "aggregate")
            return answer(batch_reply(true, 7, {}, "P0"));
        if (r.name == "getMore" && getmores < static_cast<int>(sizes_kib.size())) {
            const int kib = sizes_kib[static_cast<std::size_t>(getmores++)];
            std::string arr;
            for (int bytes = 0; bytes < kib * 1024; bytes += 1200) {
                arr += (arr.empty() ? "" : ",") + padded_event_json(next_event, 1000);
                sent.push_back(next_event++);
            }
            std::string body = R"({"cursor": {"nextBatch": [)" + arr +
                               R"(], "postBatchResumeToken": {"_data": "Q)" +
                               std::to_string(getmores) +
                               R"("}, "id": {"$numberLong": "7"}, "ns": "d.c"}, "ok": 1})";
            return {action::reply, std::move(body), 16 * 1024 - 100, 2ms};
        }
        if (r.name == "getMore")
            return answer(batch_reply(false, 7, {}, "Q9"));
        return answer(R"({"ok": 1})");
    });
    self = &srv;
    run(io, [&]() -> awaitable<void> {
        penne::mongo::change_stream cs(io.get_executor(), coll_scope(),
                                       config("mongodb://" + srv.address(), 1, 5s));
        penne::diagnostics d;
        auto ec = co_await cs.open({}, d);
        EXPECT_FALSE(ec) << d.message;
        penne::event_batch b;
        std::vector<int> seen;
        // The aggregate's (empty) first batch, then the four replies.
        for (int i = 0; i < 5; ++i) {
            ec = co_await cs.next(b, d);
            EXPECT_FALSE(ec) << d.message;
            for (const auto& e : b.events)
                seen.push_back(static_cast<int>(e.time.increment));
        }
        EXPECT_EQ(seen, sent);
        EXPECT_EQ(penne::mongo::to_json(cs.cached_token().bytes()), R"({ "_data" : "Q4" })");
        co_await cs.close();
    });
    EXPECT_GT(sent.size(), 1000u);
    // One aggregate: no read timed out into a resume.
    EXPECT_EQ(srv.commands("aggregate").size(), 1u);
}

}  // namespace
