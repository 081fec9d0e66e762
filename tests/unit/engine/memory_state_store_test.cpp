#include <penne/memory_state_store.hpp>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include "run_operation.hpp"

#include <optional>
#include <string>
#include <vector>

namespace penne {
namespace {

namespace asio = boost::asio;

resume_token token(std::uint8_t n) {
    std::vector<std::uint8_t> b = {12, 0, 0, 0, 0x10, 'i', 0, n, 0, 0, 0, 0};
    return resume_token(byte_view(b.data(), b.size()));
}

manifest_entry entry(std::uint64_t seq, std::string key, std::uint64_t count = 1) {
    manifest_entry e;
    e.seq = seq;
    e.key = std::move(key);
    e.db = "shop";
    e.coll = "orders";
    e.first = token(static_cast<std::uint8_t>(seq));
    e.last = token(static_cast<std::uint8_t>(seq + 1));
    e.count = count;
    return e;
}

std::vector<std::string> keys_of(const scope_state& s) {
    std::vector<std::string> out;
    for (auto& e : s.entries)
        out.push_back(e.key);
    return out;
}

error_code run(asio::awaitable<error_code> op, bool cancelled = false) {
    return test::run_operation(std::move(op), cancelled);
}

class MemoryStateStore : public ::testing::Test {
protected:
    memory_state_store store;
    diagnostics diag;

    scope_state load(const std::string& scope) {
        scope_state out;
        EXPECT_FALSE(run(store.load(scope, out, diag))) << diag.message;
        return out;
    }
    void record(const std::string& scope, const manifest_entry& e) {
        ASSERT_FALSE(run(store.record(scope, e, diag))) << diag.message;
    }
    void commit(const std::string& scope, const commit_request& req) {
        ASSERT_FALSE(run(store.commit(scope, req, diag))) << diag.message;
    }
};

TEST_F(MemoryStateStore, UnknownScopeIsEmpty) {
    auto s = load("nope");
    EXPECT_FALSE(s.watermark);
    EXPECT_TRUE(s.entries.empty());
    EXPECT_EQ(store.describe(), "memory");
}

TEST_F(MemoryStateStore, RecordRoundTripsAndOrdersBySeq) {
    record("s", entry(3, "c", 30));
    record("s", entry(1, "a", 10));
    record("s", entry(2, "b", 20));
    auto s = load("s");
    ASSERT_EQ(keys_of(s), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(s.entries[0], entry(1, "a", 10));
    EXPECT_EQ(s.entries[2], entry(3, "c", 30));
}

TEST_F(MemoryStateStore, SameKeyReplacesWhereverItWas) {
    record("s", entry(1, "a", 1));
    record("s", entry(2, "b", 2));
    record("s", entry(1, "a", 5));
    EXPECT_EQ(load("s").entries[0].count, 5u);
    record("s", entry(9, "a", 6));  // re-recorded later: moves behind b
    auto s = load("s");
    EXPECT_EQ(keys_of(s), (std::vector<std::string>{"b", "a"}));
    EXPECT_EQ(s.entries[1].count, 6u);
}

TEST_F(MemoryStateStore, EqualSeqKeepsRecordingOrder) {
    record("s", entry(1, "x"));
    record("s", entry(1, "y"));
    EXPECT_EQ(keys_of(load("s")), (std::vector<std::string>{"x", "y"}));
}

TEST_F(MemoryStateStore, CommitAppliesAllThreeParts) {
    record("s", entry(1, "a"));
    record("s", entry(2, "b"));
    record("s", entry(3, "c"));
    commit("s", {.durable_keys = {"b", "c"}, .watermark = token(7), .retire_keys = {"a", "b"}});
    auto s = load("s");
    ASSERT_EQ(keys_of(s), (std::vector<std::string>{"c"}));
    EXPECT_TRUE(s.entries[0].durable);
    EXPECT_EQ(s.watermark, token(7));
}

TEST_F(MemoryStateStore, CommitIsIdempotentAndToleratesUnknownKeys) {
    record("s", entry(1, "a"));
    commit_request req{
        .durable_keys = {"a", "ghost"}, .watermark = token(3), .retire_keys = {"ghost2"}};
    commit("s", req);
    commit("s", req);
    commit("s", {.durable_keys = {}, .watermark = std::nullopt, .retire_keys = {}});
    auto s = load("s");
    EXPECT_EQ(s.watermark, token(3));  // a commit without a watermark keeps it
    ASSERT_EQ(keys_of(s), (std::vector<std::string>{"a"}));
    EXPECT_TRUE(s.entries[0].durable);
}

TEST_F(MemoryStateStore, ScopesAreIndependentAndSnapshotMatchesLoad) {
    record("a", entry(1, "k"));
    commit("b", {.durable_keys = {}, .watermark = token(1), .retire_keys = {}});
    EXPECT_EQ(keys_of(store.snapshot("a")), (std::vector<std::string>{"k"}));
    EXPECT_FALSE(store.snapshot("a").watermark);
    EXPECT_TRUE(store.snapshot("b").entries.empty());
    EXPECT_EQ(store.snapshot("b").watermark, token(1));
    EXPECT_EQ(load("a").entries, store.snapshot("a").entries);
}

TEST_F(MemoryStateStore, CancelledOperationHasNoEffect) {
    EXPECT_EQ(run(store.record("s", entry(1, "a"), diag), /*cancelled=*/true), errc::cancelled);
    EXPECT_FALSE(diag.message.empty());
    EXPECT_EQ(
        run(store.commit("s", {.durable_keys = {}, .watermark = token(1), .retire_keys = {}}, diag),
            true),
        errc::cancelled);
    auto s = store.snapshot("s");
    EXPECT_TRUE(s.entries.empty());
    EXPECT_FALSE(s.watermark);
}

TEST_F(MemoryStateStore, ConcurrentScopesOnAMultiThreadedPool) {
    constexpr int scopes = 32, batches = 50;
    asio::thread_pool pool(4);
    std::vector<std::future<error_code>> done;
    for (int s = 0; s < scopes; ++s) {
        done.push_back(asio::co_spawn(
            asio::make_strand(pool),
            [this, s]() -> asio::awaitable<error_code> {
                std::string scope = "db.c" + std::to_string(s);
                diagnostics d;
                for (int b = 1; b <= batches; ++b) {
                    auto e = entry(static_cast<std::uint64_t>(b), "k" + std::to_string(b));
                    error_code ec = co_await store.record(scope, e, d);
                    if (ec)
                        co_return ec;
                    // Reading another scope concurrently must be safe too.
                    scope_state other;
                    ec = co_await store.load("db.c" + std::to_string((s + 1) % scopes), other, d);
                    if (ec)
                        co_return ec;
                    commit_request req{.durable_keys = {e.key},
                                       .watermark = token(static_cast<std::uint8_t>(b)),
                                       .retire_keys = {"k" + std::to_string(b - 1)}};
                    ec = co_await store.commit(scope, req, d);
                    if (ec)
                        co_return ec;
                }
                co_return error_code{};
            },
            asio::use_future));
    }
    for (auto& f : done)
        EXPECT_FALSE(f.get());
    pool.join();
    for (int s = 0; s < scopes; ++s) {
        auto st = store.snapshot("db.c" + std::to_string(s));
        EXPECT_EQ(st.watermark, token(batches));
        ASSERT_EQ(keys_of(st), (std::vector<std::string>{"k" + std::to_string(batches)}));
        EXPECT_TRUE(st.entries[0].durable);
    }
}

}  // namespace
}  // namespace penne
