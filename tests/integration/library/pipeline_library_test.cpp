// penne::pipeline as a library (include/penne/pipeline.hpp), in process, against mongosim
// (a real wire-protocol peer on its own thread, written to by libmongoc): every completion
// token, single- and multi-threaded io_contexts, graceful and immediate cancellation with
// the next run resuming exactly once, user destinations and state stores, the callback
// destination, and event filters that drop and redact.

#include <penne/callback_destination.hpp>
#include <penne/memory_state_store.hpp>
#include <penne/pipeline.hpp>

#include <mongosim/server.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <thread>

#include "mongo_inserter.hpp"
#include "output_reader.hpp"
#include "temp_dir.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using penne::error_code;

const auto* const mongoc_environment =
    ::testing::AddGlobalTestEnvironment(new penne::test::mongoc_env);

// Polls `pred` every 10 ms for up to `limit`.
bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds limit = 20s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (pred())
            return true;
        std::this_thread::sleep_for(10ms);
    }
    return pred();
}

// The test's sequence numbers in JSON lines (the inserter's documents hold {n, coll, payload}).
std::vector<std::int64_t> numbers_in(std::string_view body) {
    std::vector<std::int64_t> out;
    static const std::regex n_field(R"re("n" : (\d+))re");
    const std::string text(body);
    for (std::sregex_iterator it(text.begin(), text.end(), n_field), end; it != end; ++it)
        out.push_back(std::stoll((*it)[1].str()));
    return out;
}

// A user destination: objects kept in memory by key (a replay overwrites the same key).
class memory_destination final : public penne::destination {
public:
    asio::awaitable<error_code> put(const penne::sealed_object& obj, penne::diagnostics&) override {
        std::lock_guard lock(mu_);
        objects_[std::string(obj.key)] = std::string(obj.body);
        ++puts_;
        co_return error_code{};
    }
    asio::awaitable<error_code> check(penne::diagnostics&) override {
        checked_ = true;
        co_return error_code{};
    }
    std::string describe() const override { return "memory-test"; }

    std::map<std::string, std::string> objects() const {
        std::lock_guard lock(mu_);
        return objects_;
    }
    // Every sequence number in every object, with repeats.
    std::multiset<std::int64_t> numbers() const {
        std::multiset<std::int64_t> out;
        for (const auto& [key, body] : objects())
            for (auto n : numbers_in(body))
                out.insert(n);
        return out;
    }
    bool checked() const { return checked_; }
    int puts() const { return puts_; }

private:
    mutable std::mutex mu_;
    std::map<std::string, std::string> objects_;
    std::atomic<int> puts_{0};
    std::atomic<bool> checked_{false};
};

// A user state store: the in-memory one, counting the calls the pipeline makes.
class counting_state_store final : public penne::state_store {
public:
    asio::awaitable<error_code> load(const std::string& scope, penne::scope_state& out,
                                     penne::diagnostics& d) override {
        ++loads;
        co_return co_await inner_.load(scope, out, d);
    }
    asio::awaitable<error_code> record(const std::string& scope, const penne::manifest_entry& e,
                                       penne::diagnostics& d) override {
        ++records;
        co_return co_await inner_.record(scope, e, d);
    }
    asio::awaitable<error_code> commit(const std::string& scope, const penne::commit_request& r,
                                       penne::diagnostics& d) override {
        ++commits;
        co_return co_await inner_.commit(scope, r, d);
    }
    std::string describe() const override { return "counting-memory"; }
    penne::scope_state snapshot(const std::string& scope) const { return inner_.snapshot(scope); }

    std::atomic<int> loads{0}, records{0}, commits{0};

private:
    penne::memory_state_store inner_;
};

std::multiset<std::int64_t> range(std::int64_t first, std::int64_t last) {
    std::multiset<std::int64_t> s;
    for (auto n = first; n < last; ++n)
        s.insert(n);
    return s;
}

class pipeline_library : public ::testing::Test {
protected:
    void SetUp() override {
        mongo_ = std::make_unique<mongosim::background>();
        inserter_ = std::make_unique<penne::test::inserter>(mongo_->port());
    }

    penne::config base_config(const std::vector<std::string>& colls) const {
        penne::config cfg;
        cfg.mongodb.uri = mongo_->uri();
        cfg.mongodb.max_await = 50ms;
        cfg.watches.push_back({.level = "collection", .database = "shop", .collections = colls});
        cfg.output.compression = "none";
        cfg.destination.path = dir_ / "out";
        cfg.state.path = dir_ / "state";
        cfg.pipeline.batch.max_events = 7;
        cfg.pipeline.batch.max_age = 100ms;
        cfg.pipeline.checkpoint_interval = 50ms;
        cfg.pipeline.shutdown_timeout = 20s;
        return cfg;
    }

    static bool wait_ready(const penne::pipeline& p) {
        return eventually([&] {
            std::string reason;
            return p.ready(reason);
        });
    }

    void insert(std::int64_t first, std::int64_t last,
                const std::vector<std::string>& colls = {"orders"}) {
        inserter_->insert("shop", colls, first, last);
    }

    // The numbers of every event in the local-directory destination, with repeats.
    std::multiset<std::int64_t> written() const {
        auto scan = penne::test::scan_output(dir_ / "out");
        EXPECT_TRUE(scan.errors.empty()) << scan.errors.front();
        std::multiset<std::int64_t> out;
        for (const auto& e : scan.events)
            out.insert(e.n);
        return out;
    }

    penne::test::temp_dir dir_{"penne-library"};
    std::unique_ptr<mongosim::background> mongo_;
    std::unique_ptr<penne::test::inserter> inserter_;
};

// --- completion tokens --------------------------------------------------------------------

TEST_F(pipeline_library, use_awaitable_on_a_single_threaded_io_context) {
    asio::io_context ctx;
    penne::pipeline pipe(ctx.get_executor(), base_config({"orders"}));
    asio::cancellation_signal stop;
    std::optional<error_code> result;
    penne::diagnostics diag;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            // Plain use_awaitable reports an error as an exception (Asio's convention).
            try {
                co_await pipe.async_run(diag, asio::use_awaitable);
                result = error_code{};
            } catch (const boost::system::system_error& e) {
                result = e.code();
            }
        },
        asio::bind_cancellation_slot(stop.slot(), asio::detached));
    std::thread runner([&] { ctx.run(); });
    ASSERT_TRUE(wait_ready(pipe));
    insert(0, 50);
    EXPECT_TRUE(eventually([&] { return pipe.stats().events_written.load() == 50; }));
    asio::post(ctx, [&] { stop.emit(asio::cancellation_type::terminal); });
    runner.join();
    ASSERT_TRUE(result);
    EXPECT_FALSE(*result) << result->message() << ": " << diag.message;
    EXPECT_EQ(written(), range(0, 50));
    EXPECT_EQ(pipe.status().status, penne::pipeline_status::stopped);
}

TEST_F(pipeline_library, deferred_and_a_callback_on_a_multi_threaded_io_context) {
    asio::io_context ctx(4);
    auto work = asio::make_work_guard(ctx);
    penne::pipeline pipe(ctx.get_executor(), base_config({"orders", "users", "carts"}));
    // A deferred operation does nothing until it is given a handler.
    penne::diagnostics diag;
    auto op = pipe.async_run(diag, asio::deferred);
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&] { ctx.run(); });
    std::this_thread::sleep_for(100ms);
    std::string reason;
    EXPECT_FALSE(pipe.ready(reason));
    EXPECT_EQ(pipe.status().status, penne::pipeline_status::stopped);

    asio::cancellation_signal stop;
    std::promise<error_code> done;
    asio::post(ctx, [&] {
        std::move(op)(
            asio::bind_cancellation_slot(stop.slot(), [&](error_code ec) { done.set_value(ec); }));
    });
    ASSERT_TRUE(wait_ready(pipe));
    insert(0, 300, {"orders", "users", "carts"});
    EXPECT_TRUE(eventually([&] { return pipe.stats().events_written.load() == 300; }));
    asio::post(ctx, [&] { stop.emit(asio::cancellation_type::terminal); });
    auto fut = done.get_future();
    ASSERT_EQ(fut.wait_for(30s), std::future_status::ready);
    EXPECT_FALSE(fut.get()) << diag.message;
    work.reset();
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(written(), range(0, 300));
}

TEST_F(pipeline_library, use_future_reports_a_bad_configuration_without_running) {
    asio::io_context ctx;
    auto cfg = base_config({"orders"});
    cfg.output.key_layout = "{db}/{nope}";
    penne::pipeline pipe(ctx.get_executor(), cfg);
    penne::diagnostics diag;
    EXPECT_EQ(pipe.check_config(diag), penne::errc::invalid_config);
    EXPECT_NE(diag.message.find("output.key_layout"), std::string::npos) << diag.message;
    auto fut = pipe.async_run(asio::use_future);
    ctx.run();
    ASSERT_EQ(fut.wait_for(0s), std::future_status::ready);
    try {
        fut.get();
        ADD_FAILURE() << "no error";
    } catch (const boost::system::system_error& e) {
        EXPECT_EQ(e.code(), penne::errc::invalid_config);
    }
    EXPECT_NE(pipe.last_diagnostics().message.find("output.key_layout"), std::string::npos);
}

// A watch's start_at set in code: checked by check_config, used when the scope has no token.
TEST_F(pipeline_library, watch_start_at_from_code_starts_between_two_inserts) {
    {
        asio::io_context ctx;
        auto cfg = base_config({"orders"});
        cfg.watches[0].start_at = "soon";
        penne::pipeline pipe(ctx.get_executor(), cfg);
        penne::diagnostics diag;
        EXPECT_EQ(pipe.check_config(diag), penne::errc::invalid_config);
        EXPECT_NE(diag.message.find("watches[0].start_at: 'soon' is not a start position"),
                  std::string::npos)
            << diag.message;
    }
    insert(0, 10);
    // The server's operationTime after the first inserts: start just after it.
    std::uint32_t secs = 0, inc = 0;
    {
        mongoc_client_t* client = mongoc_client_new(mongo_->uri().c_str());
        bson_t* cmd = BCON_NEW("ping", BCON_INT32(1));
        bson_t reply;
        bson_error_t err;
        if (mongoc_client_command_simple(client, "admin", cmd, nullptr, &reply, &err)) {
            bson_iter_t it;
            if (bson_iter_init_find(&it, &reply, "operationTime"))
                bson_iter_timestamp(&it, &secs, &inc);
        }
        bson_destroy(&reply);
        bson_destroy(cmd);
        mongoc_client_destroy(client);
    }
    ASSERT_GT(secs, 0u);
    insert(10, 20);
    asio::io_context ctx;
    auto cfg = base_config({"orders"});
    cfg.watches[0].start_at = std::to_string(secs) + ":" + std::to_string(inc + 1);
    penne::pipeline pipe(ctx.get_executor(), cfg);
    asio::cancellation_signal stop;
    auto fut = pipe.async_run(asio::bind_cancellation_slot(stop.slot(), asio::use_future));
    std::thread runner([&] { ctx.run(); });
    EXPECT_TRUE(eventually([&] { return pipe.stats().events_written.load() == 10; }));
    asio::post(ctx, [&] { stop.emit(asio::cancellation_type::terminal); });
    runner.join();
    ASSERT_EQ(fut.wait_for(0s), std::future_status::ready);
    EXPECT_NO_THROW(fut.get());
    EXPECT_EQ(written(), range(10, 20));
}

TEST_F(pipeline_library, use_future_with_cancellation_from_another_thread) {
    asio::io_context ctx;
    auto work = asio::make_work_guard(ctx);
    std::thread runner([&] { ctx.run(); });
    auto cfg = base_config({"orders"});
    cfg.mongodb.uri = mongo_->uri() + "&appName=lib-test";
    penne::pipeline pipe(ctx.get_executor(), cfg);
    asio::cancellation_signal stop;
    auto fut = pipe.async_run(asio::bind_cancellation_slot(stop.slot(), asio::use_future));
    ASSERT_TRUE(wait_ready(pipe));
    insert(0, 20);
    EXPECT_TRUE(eventually([&] { return pipe.stats().events_written.load() == 20; }));
    // Any cancellation type starts the graceful stop.
    asio::post(ctx, [&] { stop.emit(asio::cancellation_type::partial); });
    ASSERT_EQ(fut.wait_for(30s), std::future_status::ready);
    EXPECT_NO_THROW(fut.get()) << pipe.last_diagnostics().message;
    work.reset();
    runner.join();
    EXPECT_EQ(written(), range(0, 20));
}

// --- cancellation -------------------------------------------------------------------------

TEST_F(pipeline_library, cancellation_mid_stream_drains_checkpoints_and_the_next_run_resumes) {
    auto cfg = base_config({"orders", "users"});
    cfg.pipeline.batch.max_events = 1000;  // batches seal on age or shutdown only
    cfg.pipeline.batch.max_age = 60s;
    {
        asio::io_context ctx;
        penne::pipeline pipe(ctx.get_executor(), cfg);
        asio::cancellation_signal stop;
        std::promise<error_code> done;
        pipe.async_run(
            asio::bind_cancellation_slot(stop.slot(), [&](error_code ec) { done.set_value(ec); }));
        std::thread runner([&] { ctx.run(); });
        ASSERT_TRUE(wait_ready(pipe));
        insert(0, 200, {"orders", "users"});
        EXPECT_TRUE(eventually([&] { return pipe.stats().events_received.load() == 200; }));
        EXPECT_EQ(pipe.stats().events_written.load(), 0u) << "open batches wait for their age";
        asio::post(ctx, [&] { stop.emit(asio::cancellation_type::terminal); });
        runner.join();
        EXPECT_FALSE(done.get_future().get()) << pipe.last_diagnostics().message;
        // The drain sealed and uploaded every open batch, and checkpointed past them.
        EXPECT_EQ(pipe.stats().events_written.load(), 200u);
        EXPECT_GE(pipe.stats()
                      .batches_sealed[static_cast<std::size_t>(penne::seal_reason::shutdown)]
                      .load(),
                  2u);
        EXPECT_EQ(written(), range(0, 200));
    }
    insert(200, 260, {"orders", "users"});  // while nothing runs
    {
        asio::io_context ctx;
        penne::pipeline pipe(ctx.get_executor(), cfg);
        asio::cancellation_signal stop;
        std::promise<error_code> done;
        pipe.async_run(
            asio::bind_cancellation_slot(stop.slot(), [&](error_code ec) { done.set_value(ec); }));
        std::thread runner([&] { ctx.run(); });
        ASSERT_TRUE(wait_ready(pipe));
        EXPECT_TRUE(eventually([&] { return pipe.stats().events_received.load() == 60; }));
        asio::post(ctx, [&] { stop.emit(asio::cancellation_type::terminal); });
        runner.join();
        EXPECT_FALSE(done.get_future().get()) << pipe.last_diagnostics().message;
        EXPECT_EQ(pipe.stats().events_received.load(), 60u) << "nothing read twice";
    }
    EXPECT_EQ(written(), range(0, 260));
}

TEST_F(pipeline_library, second_cancellation_stops_at_once_and_the_next_run_replays) {
    auto cfg = base_config({"orders"});
    auto state = std::make_shared<counting_state_store>();
    std::atomic<int> stuck{0};
    {
        asio::io_context ctx;
        penne::hooks h;
        h.state = state;
        // Uploads that never finish on their own: the graceful drain cannot complete.
        h.dest = std::make_shared<penne::callback_destination>(
            penne::callback_destination::awaitable_callback(
                [&](const penne::sealed_object&,
                    penne::diagnostics& d) -> asio::awaitable<error_code> {
                    ++stuck;
                    asio::steady_timer t(co_await asio::this_coro::executor, 1h);
                    auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
                    d.message = "abandoned";
                    co_return ec ? ec : make_error_code(penne::errc::timeout);
                }),
            "stuck");
        penne::pipeline pipe(ctx.get_executor(), cfg, h);
        asio::cancellation_signal stop;
        std::promise<error_code> done;
        pipe.async_run(
            asio::bind_cancellation_slot(stop.slot(), [&](error_code ec) { done.set_value(ec); }));
        std::thread runner([&] { ctx.run(); });
        ASSERT_TRUE(wait_ready(pipe));
        insert(0, 30);
        ASSERT_TRUE(eventually([&] { return stuck.load() >= 1; }));
        asio::post(ctx, [&] { stop.emit(asio::cancellation_type::terminal); });
        auto fut = done.get_future();
        EXPECT_EQ(fut.wait_for(500ms), std::future_status::timeout) << "draining";
        const auto second = std::chrono::steady_clock::now();
        asio::post(ctx, [&] { stop.emit(asio::cancellation_type::terminal); });
        ASSERT_EQ(fut.wait_for(10s), std::future_status::ready);
        EXPECT_LT(std::chrono::steady_clock::now() - second, 5s);
        fut.get();
        runner.join();
        EXPECT_EQ(pipe.stats().events_written.load(), 0u);
    }
    // The manifest recorded the batches: the next run replays them, nothing lost or doubled.
    auto dest = std::make_shared<memory_destination>();
    {
        asio::io_context ctx;
        penne::hooks h;
        h.state = state;
        h.dest = dest;
        penne::pipeline pipe(ctx.get_executor(), cfg, h);
        asio::cancellation_signal stop;
        pipe.async_run(asio::bind_cancellation_slot(stop.slot(), [](error_code) {}));
        std::thread runner([&] { ctx.run(); });
        EXPECT_TRUE(eventually([&] { return pipe.stats().events_written.load() == 30; }));
        asio::post(ctx, [&] { stop.emit(asio::cancellation_type::terminal); });
        runner.join();
    }
    EXPECT_EQ(dest->numbers(), range(0, 30));
}

// --- extension points ---------------------------------------------------------------------

TEST_F(pipeline_library, custom_destination_and_state_store_end_to_end) {
    auto cfg = base_config({"orders"});
    cfg.destination.type = "nowhere";  // replaced by the hook: not validated
    cfg.state.type = "nowhere";
    auto dest = std::make_shared<memory_destination>();
    auto state = std::make_shared<counting_state_store>();
    for (int run = 0; run < 2; ++run) {
        asio::io_context ctx;
        penne::hooks h;
        h.dest = dest;
        h.state = state;
        std::vector<std::string> lines;
        std::mutex mu;
        h.log = [&](penne::log_level, std::string_view line) {
            std::lock_guard lock(mu);
            lines.emplace_back(line);
        };
        penne::pipeline pipe(ctx.get_executor(), cfg, h);
        penne::diagnostics d;
        ASSERT_FALSE(pipe.check_config(d)) << d.message;
        EXPECT_EQ(pipe.describe_destination(), "memory-test");
        EXPECT_EQ(pipe.describe_state(), "counting-memory");
        asio::cancellation_signal stop;
        pipe.async_run(asio::bind_cancellation_slot(stop.slot(), [](error_code) {}));
        std::thread runner([&] { ctx.run(); });
        ASSERT_TRUE(wait_ready(pipe));
        insert(run * 40, run * 40 + 40);
        EXPECT_TRUE(eventually([&] { return pipe.stats().events_written.load() == 40; }));
        asio::post(ctx, [&] { stop.emit(asio::cancellation_type::terminal); });
        runner.join();
        std::lock_guard lock(mu);
        EXPECT_FALSE(lines.empty()) << "the embedder's log function gets the pipeline's lines";
    }
    EXPECT_TRUE(dest->checked());
    EXPECT_EQ(dest->numbers(), range(0, 80));
    EXPECT_GE(state->loads.load(), 2);
    EXPECT_GE(state->records.load(), 80 / 7);
    EXPECT_GE(state->commits.load(), 2);
    auto saved = state->snapshot("shop.orders");
    EXPECT_TRUE(saved.watermark.has_value());
    EXPECT_TRUE(saved.entries.empty()) << "every batch durable and retired";
}

TEST_F(pipeline_library, callback_destination_receives_every_sealed_batch) {
    auto cfg = base_config({"orders"});
    std::mutex mu;
    std::map<std::string, std::string> got;
    std::atomic<int> failures_left{2};
    penne::hooks h;
    h.dest = std::make_shared<penne::callback_destination>(
        penne::callback_destination::plain_callback(
            [&](const penne::sealed_object& obj, penne::diagnostics& d) -> error_code {
                // The first two calls fail with a retryable error: retried, not lost.
                if (failures_left.fetch_sub(1) > 0) {
                    d.message = "try again";
                    return make_error_code(penne::errc::io_error);
                }
                EXPECT_EQ(obj.content_type, "application/x-ndjson");
                EXPECT_EQ(numbers_in(obj.body).size(), obj.event_count);
                std::lock_guard lock(mu);
                got[std::string(obj.key)] = std::string(obj.body);
                return {};
            }),
        "collector");
    asio::io_context ctx;
    penne::pipeline pipe(ctx.get_executor(), cfg, h);
    EXPECT_EQ(pipe.describe_destination(), "callback:collector");
    asio::cancellation_signal stop;
    pipe.async_run(asio::bind_cancellation_slot(stop.slot(), [](error_code) {}));
    std::thread runner([&] { ctx.run(); });
    ASSERT_TRUE(wait_ready(pipe));
    insert(0, 25);
    EXPECT_TRUE(eventually([&] { return pipe.stats().events_written.load() == 25; }));
    asio::post(ctx, [&] { stop.emit(asio::cancellation_type::terminal); });
    runner.join();
    EXPECT_GE(pipe.stats().upload_retries.load(), 2u);
    std::multiset<std::int64_t> all;
    for (const auto& [key, body] : got) {
        EXPECT_EQ(key.rfind("penne/shop/orders/", 0), 0u) << key;
        for (auto n : numbers_in(body))
            all.insert(n);
    }
    EXPECT_EQ(all, range(0, 25));
}

// A user encoder: one "<operation> <db>.<coll> <bytes>" line per event.
class summary_encoder final : public penne::batch_encoder {
public:
    error_code append(const penne::change_event& ev, penne::diagnostics&) override {
        buf_ += std::string(ev.operation) + " " + std::string(ev.db) + "." + std::string(ev.coll) +
                " " + std::to_string(ev.raw.size()) + "\n";
        return {};
    }
    std::size_t buffered_bytes() const noexcept override { return buf_.size(); }
    void finish(std::string& out) override { out = std::move(buf_); }

private:
    std::string buf_;
};

class summary_encoders final : public penne::encoder_factory {
public:
    penne::encoder_info info() const noexcept override { return {"summary", "text/plain"}; }
    std::unique_ptr<penne::batch_encoder> open(std::string_view) const override {
        return std::make_unique<summary_encoder>();
    }
};

TEST_F(pipeline_library, custom_encoder_with_the_configured_compression) {
    auto cfg = base_config({"orders"});
    cfg.output.compression = "gzip";
    auto dest = std::make_shared<memory_destination>();
    penne::hooks h;
    h.dest = dest;
    h.encoder = std::make_shared<summary_encoders>();
    asio::io_context ctx;
    penne::pipeline pipe(ctx.get_executor(), cfg, h);
    asio::cancellation_signal stop;
    pipe.async_run(asio::bind_cancellation_slot(stop.slot(), [](error_code) {}));
    std::thread runner([&] { ctx.run(); });
    ASSERT_TRUE(wait_ready(pipe));
    insert(0, 10);
    EXPECT_TRUE(eventually([&] { return pipe.stats().events_written.load() == 10; }));
    asio::post(ctx, [&] { stop.emit(asio::cancellation_type::terminal); });
    runner.join();
    const auto objects = dest->objects();
    ASSERT_FALSE(objects.empty());
    for (const auto& [key, body] : objects) {
        EXPECT_NE(key.find(".summary.gz"), std::string::npos) << key;
        ASSERT_GE(body.size(), 2u);
        EXPECT_EQ(static_cast<unsigned char>(body[0]), 0x1f) << "gzip magic";
        EXPECT_EQ(static_cast<unsigned char>(body[1]), 0x8b);
    }
}

TEST_F(pipeline_library, a_filter_drops_events_and_the_checkpoint_moves_past_them) {
    auto cfg = base_config({"orders"});
    auto dest = std::make_shared<memory_destination>();
    auto state = std::make_shared<counting_state_store>();
    penne::hooks h;
    h.dest = dest;
    h.state = state;
    // Deterministic: keeps even numbers only.
    h.filter = [](const penne::change_event& ev, penne::event_replacement&) {
        auto n = numbers_in(penne::to_extended_json(ev));
        return !n.empty() && n.front() % 2 == 1 ? penne::filter_decision::drop
                                                : penne::filter_decision::keep;
    };
    {
        asio::io_context ctx;
        penne::pipeline pipe(ctx.get_executor(), cfg, h);
        asio::cancellation_signal stop;
        pipe.async_run(asio::bind_cancellation_slot(stop.slot(), [](error_code) {}));
        std::thread runner([&] { ctx.run(); });
        ASSERT_TRUE(wait_ready(pipe));
        insert(0, 40);
        EXPECT_TRUE(eventually([&] { return pipe.stats().events_filtered.load() == 20; }));
        EXPECT_TRUE(eventually([&] { return pipe.stats().events_written.load() == 20; }));
        asio::post(ctx, [&] { stop.emit(asio::cancellation_type::terminal); });
        runner.join();
    }
    std::multiset<std::int64_t> evens;
    for (std::int64_t n = 0; n < 40; n += 2)
        evens.insert(n);
    EXPECT_EQ(dest->numbers(), evens);
    // The next run starts after the last event (filtered ones included): nothing is read again.
    const int puts = dest->puts();
    {
        asio::io_context ctx;
        penne::pipeline pipe(ctx.get_executor(), cfg, h);
        asio::cancellation_signal stop;
        pipe.async_run(asio::bind_cancellation_slot(stop.slot(), [](error_code) {}));
        std::thread runner([&] { ctx.run(); });
        ASSERT_TRUE(wait_ready(pipe));
        std::this_thread::sleep_for(300ms);
        EXPECT_EQ(pipe.stats().events_received.load(), 0u);
        asio::post(ctx, [&] { stop.emit(asio::cancellation_type::terminal); });
        runner.join();
    }
    EXPECT_EQ(dest->puts(), puts);
}

TEST_F(pipeline_library, a_filter_redacts_a_field) {
    auto cfg = base_config({"orders"});
    penne::hooks h;
    const std::string secret = "the quick brown fox jumps over the lazy dog";
    h.filter = [&](const penne::change_event& ev, penne::event_replacement& out) {
        if (ev.operation != "insert")
            return penne::filter_decision::keep;
        out.json = penne::to_extended_json(ev, true);  // canonical: lossless round trip
        auto at = out.json.find(secret);
        if (at == std::string::npos)
            return penne::filter_decision::keep;
        out.json.replace(at, secret.size(), "REDACTED");
        return penne::filter_decision::replace;
    };
    asio::io_context ctx;
    penne::pipeline pipe(ctx.get_executor(), cfg, h);
    asio::cancellation_signal stop;
    pipe.async_run(asio::bind_cancellation_slot(stop.slot(), [](error_code) {}));
    std::thread runner([&] { ctx.run(); });
    ASSERT_TRUE(wait_ready(pipe));
    insert(0, 30);
    EXPECT_TRUE(eventually([&] { return pipe.stats().events_written.load() == 30; }));
    asio::post(ctx, [&] { stop.emit(asio::cancellation_type::terminal); });
    runner.join();
    EXPECT_EQ(written(), range(0, 30)) << "every event, with its number and resume token";
    std::size_t redacted = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir_ / "out")) {
        if (!entry.is_regular_file())
            continue;
        std::ifstream in(entry.path());
        std::string body((std::istreambuf_iterator<char>(in)), {});
        EXPECT_EQ(body.find(secret), std::string::npos) << entry.path();
        for (auto at = body.find("REDACTED"); at != std::string::npos;
             at = body.find("REDACTED", at + 1))
            ++redacted;
    }
    EXPECT_EQ(redacted, 30u);
}

TEST_F(pipeline_library, a_filter_that_changes_the_resume_token_stops_the_scope) {
    auto cfg = base_config({"orders"});
    penne::hooks h;
    h.filter = [](const penne::change_event&, penne::event_replacement& out) {
        out.json = R"({"_id": {"_data": "00"}, "operationType": "insert"})";
        return penne::filter_decision::replace;
    };
    asio::io_context ctx;
    penne::pipeline pipe(ctx.get_executor(), cfg, h);
    std::promise<error_code> done;
    penne::diagnostics diag;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            auto [ec] = co_await pipe.async_run(diag, asio::as_tuple(asio::use_awaitable));
            done.set_value(ec);
        },
        asio::detached);
    std::thread runner([&] { ctx.run(); });
    ASSERT_TRUE(wait_ready(pipe));
    insert(0, 1);
    auto fut = done.get_future();
    ASSERT_EQ(fut.wait_for(20s), std::future_status::ready);
    EXPECT_EQ(fut.get(), penne::errc::unencodable_event);
    EXPECT_NE(diag.message.find("filter"), std::string::npos) << diag.message;
    runner.join();
    EXPECT_TRUE(written().empty());
}

}  // namespace
