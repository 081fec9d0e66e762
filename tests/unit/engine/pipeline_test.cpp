// The pipeline's metrics, status() and ready(), driven end to end in memory: a scripted
// change source, a memory destination that can be told to fail, the memory state store
// (optionally failing), and a registry read back through its handles and its exposition.

#include "test_events.hpp"

#include <penne/memory_state_store.hpp>
#include <penne/metrics.hpp>
#include <penne/pipeline_engine.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <span>
#include <thread>

namespace penne::test {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// An event the script owns; its views stay valid while the source holds it.
struct scripted_event {
    std::vector<std::uint8_t> token;
    std::string db, coll, op;
    cluster_time time;
    change_event view() const {
        change_event ev;
        ev.raw = {token.data(), token.size()};
        ev.token = ev.raw;
        ev.operation = op;
        ev.db = db;
        ev.coll = coll;
        ev.time = time;
        return ev;
    }
};

std::uint32_t now_seconds() {
    return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

// What the sources of every scope will do; shared with the test thread.
struct script {
    std::mutex mu;
    std::map<std::string, std::deque<std::vector<scripted_event>>> replies;  // by scope id
    std::deque<error_code> next_errors;  // returned by next() before any reply
    std::atomic<std::uint64_t> resumes{0};
    std::atomic<bool> open_allowed{true};
    std::atomic<int> opens{0};
    std::map<std::string, std::vector<start_position>> starts;  // every open's `from`, by scope
    std::uint64_t next_token = 1'000'000;

    void push(const std::string& scope, std::vector<scripted_event> reply) {
        std::lock_guard lock(mu);
        replies[scope].push_back(std::move(reply));
    }
    scripted_event event(std::string db, std::string coll, std::string op, cluster_time t) {
        std::lock_guard lock(mu);
        return {token_bson(++next_token), std::move(db), std::move(coll), std::move(op), t};
    }
};

class scripted_source final : public change_source {
public:
    scripted_source(asio::any_io_executor ex, script& s, std::string id)
        : ex_(ex), s_(s), id_(std::move(id)), last_(token_bson(1)) {}

    asio::awaitable<error_code> open(const start_position& from, diagnostics&) override {
        {
            std::lock_guard lock(s_.mu);
            s_.starts[id_].push_back(from);
        }
        asio::steady_timer t(ex_);
        while (!s_.open_allowed) {
            t.expires_after(2ms);
            auto [ec] = co_await t.async_wait(nothrow);
            if (ec)
                co_return ec;
        }
        ++s_.opens;
        co_return error_code{};
    }

    asio::awaitable<error_code> next(event_batch& out, diagnostics& diag) override {
        out.clear();
        std::vector<scripted_event> reply;
        bool have = false;
        {
            std::lock_guard lock(s_.mu);
            if (!s_.next_errors.empty()) {
                auto ec = s_.next_errors.front();
                s_.next_errors.pop_front();
                diag.message = "injected";
                co_return ec;
            }
            auto& q = s_.replies[id_];
            if (!q.empty()) {
                reply = std::move(q.front());
                q.pop_front();
                have = true;
            }
        }
        if (!have) {
            // An idle getMore: a short wait, then an empty reply with a token.
            asio::steady_timer t(ex_);
            t.expires_after(2ms);
            auto [ec] = co_await t.async_wait(nothrow);
            if (ec)
                co_return ec;
            out.post_batch_token = resume_token({last_.data(), last_.size()});
            co_return error_code{};
        }
        current_ = std::move(reply);
        for (const auto& e : current_)
            out.events.push_back(e.view());
        if (!current_.empty())
            last_ = current_.back().token;
        out.post_batch_token = resume_token({last_.data(), last_.size()});
        co_return error_code{};
    }

    asio::awaitable<void> close() override { co_return; }
    std::uint64_t resume_count() const noexcept override { return s_.resumes; }

private:
    asio::any_io_executor ex_;
    script& s_;
    std::string id_;
    std::vector<std::uint8_t> last_;
    std::vector<scripted_event> current_;
};

class scripted_sources final : public source_factory {
public:
    explicit scripted_sources(script& s) : s_(s) {}
    std::unique_ptr<change_source> make(asio::any_io_executor ex,
                                        const watch_scope& scope) override {
        return std::make_unique<scripted_source>(ex, s_, scope.id());
    }

private:
    script& s_;
};

// What the raw encoders were asked, in order: "reserve N" hints and "finish N" (object size).
// Scopes on several threads share it.
class encoder_log {
public:
    void add(std::string line) {
        std::lock_guard lock(mu_);
        lines_.push_back(std::move(line));
    }
    std::vector<std::string> lines() const {
        std::lock_guard lock(mu_);
        return lines_;
    }

private:
    mutable std::mutex mu_;
    std::vector<std::string> lines_;
};

// Encodes an event as its raw bytes and a newline.
class raw_encoder final : public batch_encoder {
public:
    explicit raw_encoder(encoder_log& log) : log_(log) {}
    error_code append(const change_event& ev, diagnostics&) override {
        buf_.append(reinterpret_cast<const char*>(ev.raw.data()), ev.raw.size());
        buf_ += '\n';
        return {};
    }
    std::size_t buffered_bytes() const noexcept override { return buf_.size(); }
    void reserve(std::size_t bytes) override { log_.add("reserve " + std::to_string(bytes)); }
    void finish(std::string& out) override {
        log_.add("finish " + std::to_string(buf_.size()));
        out = std::move(buf_);
    }

private:
    encoder_log& log_;
    std::string buf_;
};

class raw_encoders final : public encoder_factory {
public:
    encoder_info info() const noexcept override { return {"raw", "application/octet-stream"}; }
    std::unique_ptr<batch_encoder> open(std::string_view) const override {
        return std::make_unique<raw_encoder>(log);
    }
    mutable encoder_log log;
};

// Keeps objects in memory; fails while `failing` holds an error.
class memory_destination final : public destination {
public:
    asio::awaitable<error_code> put(const sealed_object& obj, diagnostics& diag) override {
        std::lock_guard lock(mu);
        if (failing) {
            diag.message = "injected failure for " + std::string(obj.key);
            co_return failing;
        }
        objects[std::string(obj.key)] = std::string(obj.body);
        co_return error_code{};
    }
    asio::awaitable<error_code> check(diagnostics&) override { co_return error_code{}; }
    std::string describe() const override { return "memory"; }

    std::uint64_t total_bytes() {
        std::lock_guard lock(mu);
        std::uint64_t n = 0;
        for (auto& [k, v] : objects)
            n += v.size();
        return n;
    }
    std::size_t count() {
        std::lock_guard lock(mu);
        return objects.size();
    }
    void fail_with(error_code ec) {
        std::lock_guard lock(mu);
        failing = ec;
    }

    std::mutex mu;
    error_code failing;
    std::map<std::string, std::string> objects;
};

// The memory store, whose record() fails the first `record_failures` times.
class flaky_state_store final : public state_store {
public:
    asio::awaitable<error_code> load(const std::string& id, scope_state& out,
                                     diagnostics& d) override {
        co_return co_await inner.load(id, out, d);
    }
    asio::awaitable<error_code> record(const std::string& id, const manifest_entry& e,
                                       diagnostics& d) override {
        if (record_failures > 0) {
            --record_failures;
            d.message = "injected";
            co_return make_error_code(errc::io_error);
        }
        {
            std::lock_guard lock(mu);
            recorded.push_back(e.seq);
        }
        co_return co_await inner.record(id, e, d);
    }
    // Records each entry through record() above. While `hold_records` is set, a call waits
    // before writing anything; `fail_groups_after_first` makes that many calls of two or
    // more entries fail after writing their first entry (a prefix is durable).
    asio::awaitable<error_code> record_many(const std::string& id,
                                            std::span<const manifest_entry> es,
                                            diagnostics& d) override {
        {
            std::lock_guard lock(mu);
            groups.push_back(es.size());
        }
        while (hold_records) {
            asio::steady_timer t(co_await asio::this_coro::executor, 1ms);
            co_await t.async_wait(nothrow);
        }
        for (std::size_t i = 0; i < es.size(); ++i) {
            if (i == 1 && fail_groups_after_first > 0) {
                --fail_groups_after_first;
                d.message = "injected after the first entry";
                co_return make_error_code(errc::io_error);
            }
            error_code ec = co_await record(id, es[i], d);
            if (ec)
                co_return ec;
        }
        co_return error_code{};
    }
    asio::awaitable<error_code> commit(const std::string& id, const commit_request& r,
                                       diagnostics& d) override {
        co_return co_await inner.commit(id, r, d);
    }
    std::string describe() const override { return "flaky memory"; }

    memory_state_store inner;
    std::atomic<int> record_failures{0};
    std::atomic<bool> hold_records{false};
    std::atomic<int> fail_groups_after_first{0};
    std::mutex mu;
    std::vector<std::uint64_t> recorded;  // manifest entries' seq, in the order written
    std::vector<std::size_t> groups;      // entries per record_many() call
};

class PipelineTest : public ::testing::Test {
protected:
    void SetUp() override {
        diagnostics d;
        ASSERT_FALSE(key_template::parse("flat", "p", keys_, d)) << d.message;
        cfg_.batch.max_events = 3;
        cfg_.batch.max_age = 10s;
        cfg_.checkpoint_interval = 10ms;
        cfg_.retry.initial_delay = 1ms;
        cfg_.retry.max_delay = 4ms;
        cfg_.shutdown_timeout = 5s;
        cfg_.not_ready_after = 200ms;
    }

    void make(std::vector<watch_scope> scopes, pipeline_metrics_options popts = {},
              metrics_options mopts = {}, bool with_metrics = true) {
        cfg_.scopes = std::move(scopes);
        registry_ = std::make_unique<metrics_registry>(std::move(mopts));
        pm_ = std::make_unique<pipeline_metrics>(*registry_, std::move(popts));
        pipeline_services svc;
        svc.sources = &sources_;
        svc.encoder = &encoders_;
        svc.dest = &dest_;
        svc.state = &state_;
        svc.keys = &keys_;
        svc.metrics = with_metrics ? pm_.get() : nullptr;
        svc.filter = filter_;
        svc.compression = compressor_;
        pipe_ = std::make_unique<pipeline_engine>(ioc_.get_executor(), cfg_, svc);
    }

    void start() {
        asio::co_spawn(
            strand_, pipe_->run(diag_),
            asio::bind_cancellation_slot(stop_.slot(), [this](std::exception_ptr e, error_code ec) {
                ASSERT_FALSE(e);
                result_ = ec;
                done_ = true;
            }));
    }

    // Runs the io_context on this thread until `pred` holds (false on timeout).
    bool run_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!pred()) {
            if (std::chrono::steady_clock::now() > deadline)
                return false;
            ioc_.run_one_for(5ms);
        }
        return true;
    }
    void run_for(std::chrono::milliseconds d) {
        const auto until = std::chrono::steady_clock::now() + d;
        while (std::chrono::steady_clock::now() < until)
            ioc_.run_one_for(2ms);
    }

    void stop() {
        stop_.emit(asio::cancellation_type::terminal);
        ASSERT_TRUE(run_until([&] { return done_; }));
    }

    bool is_ready() {
        std::string reason;
        return pipe_->ready(reason);
    }
    std::string not_ready_reason() {
        std::string reason;
        EXPECT_FALSE(pipe_->ready(reason));
        return reason;
    }

    // An exposition line's value, or -1 when the series is absent.
    double sample(const std::string& series) {
        const auto text = registry_->render();
        const auto at = text.find("\n" + series + " ");
        if (at == std::string::npos)
            return -1;
        return std::strtod(text.c_str() + at + series.size() + 2, nullptr);
    }

    static watch_scope database(std::string db) {
        return {watch_scope::level::database, std::move(db), {}, {}, {}};
    }

    asio::io_context ioc_;
    asio::strand<asio::io_context::executor_type> strand_ = asio::make_strand(ioc_);
    script script_;
    scripted_sources sources_{script_};
    raw_encoders encoders_;
    memory_destination dest_;
    flaky_state_store state_;
    key_template keys_;
    pipeline_config cfg_;
    std::unique_ptr<metrics_registry> registry_;
    std::unique_ptr<pipeline_metrics> pm_;
    std::unique_ptr<pipeline_engine> pipe_;
    const event_filter* filter_ = nullptr;  // set before make()
    compressor* compressor_ = nullptr;      // likewise
    asio::cancellation_signal stop_;
    diagnostics diag_;
    error_code result_;
    bool done_ = false;
};

TEST_F(PipelineTest, MetricsCountEveryEventBatchAndByte) {
    make({database("d")}, {.rigatoni_compat = true, .destination_type = "memory"});
    start();
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    EXPECT_EQ(sample("penne_pipeline_status"), 1);
    EXPECT_EQ(sample("rigatoni_pipeline_status"), 1);

    // c1: 4 inserts, 2 updates; c2: 1 delete, 1 replace, 1 other. Two replies.
    const auto t = now_seconds();
    std::vector<scripted_event> r1, r2;
    std::uint64_t bson = 0;
    const char* ops1[] = {"insert", "insert", "update", "insert", "delete"};
    const char* colls1[] = {"c1", "c1", "c1", "c1", "c2"};
    for (int i = 0; i < 5; ++i)
        r1.push_back(script_.event("d", colls1[i], ops1[i], {t, std::uint32_t(i + 1)}));
    const char* ops2[] = {"insert", "update", "replace", "drop"};
    const char* colls2[] = {"c1", "c1", "c2", "c2"};
    for (int i = 0; i < 4; ++i)
        r2.push_back(script_.event("d", colls2[i], ops2[i], {t, std::uint32_t(i + 10)}));
    const cluster_time last_time = r2.back().time;
    for (auto& e : r1)
        bson += e.token.size();
    for (auto& e : r2)
        bson += e.token.size();
    script_.push("d", std::move(r1));
    script_.push("d", std::move(r2));

    // c1 has 6 events: two count-sealed batches; c2's 3 events: one.
    ASSERT_TRUE(run_until([&] { return pipe_->stats().events_written == 9; }));
    ASSERT_TRUE(run_until([&] { return pipe_->status().scopes[0].state == scope_activity::idle; }));

    auto& pm = *pm_;
    EXPECT_EQ(pm.events_received.with({"d", "c1", "insert"}).value(), 4);
    EXPECT_EQ(pm.events_received.with({"d", "c1", "update"}).value(), 2);
    EXPECT_EQ(pm.events_received.with({"d", "c2", "delete"}).value(), 1);
    EXPECT_EQ(pm.events_received.with({"d", "c2", "replace"}).value(), 1);
    EXPECT_EQ(pm.events_received.with({"d", "c2", "other"}).value(), 1);
    EXPECT_EQ(pm.events_written.with({"d", "c1", "insert"}).value(), 4);
    EXPECT_EQ(pm.events_written.with({"d", "c1", "update"}).value(), 2);
    EXPECT_EQ(pm.events_written.with({"d", "c2", "other"}).value(), 1);
    EXPECT_EQ(pm.rig.events_processed.with({"c1", "insert"}).value(), 4);
    EXPECT_EQ(pm.batches_sealed.with({"d", "c1", "count"}).value(), 2);
    EXPECT_EQ(pm.batches_sealed.with({"d", "c2", "count"}).value(), 1);
    EXPECT_EQ(pm.objects_written.with({"d", "c1"}).value(), 2);
    EXPECT_EQ(pm.objects_written.with({"d", "c2"}).value(), 1);
    EXPECT_EQ(
        pm.bytes_received.with({"d", "c1"}).value() + pm.bytes_received.with({"d", "c2"}).value(),
        double(bson));
    // No compression: encoded bytes are the object bytes.
    const double written =
        pm.bytes_written.with({"d", "c1"}).value() + pm.bytes_written.with({"d", "c2"}).value();
    EXPECT_EQ(written, double(dest_.total_bytes()));
    EXPECT_EQ(
        pm.bytes_encoded.with({"d", "c1"}).value() + pm.bytes_encoded.with({"d", "c2"}).value(),
        written);
    EXPECT_EQ(sample("penne_compress_cpu_seconds_total"), 0);
    auto be = pm.batch_events.with({"d", "c1"});
    EXPECT_EQ(be.count(), 2u);
    EXPECT_EQ(be.sum(), 6);
    EXPECT_EQ(pm.upload_duration.with({"d"}).count(), 3u);
    EXPECT_EQ(pm.upload_attempt.with({"d"}).count(), 3u);
    EXPECT_EQ(pm.rig.write_duration.with({"memory"}).count(), 3u);
    EXPECT_GE(pm.checkpoints_saved.with({"d"}).value(), 1);
    // One record operation per call: batches sealed from one reply are recorded together.
    EXPECT_GE(pm.state_store_duration.with({"record"}).count(), 1u);
    EXPECT_LE(pm.state_store_duration.with({"record"}).count(), 3u);
    EXPECT_EQ(pm.state_store_duration.with({"load"}).count(), 1u);
    EXPECT_GE(pm.state_store_duration.with({"checkpoint"}).count(), 1u);
    EXPECT_EQ(sample("penne_active_collections"), 2);
    EXPECT_EQ(sample("penne_buffered_bytes"), 0);
    EXPECT_EQ(sample("rigatoni_batch_queue_size{collection=\"c1\"}"), 0);
    EXPECT_GE(sample("penne_lag_seconds{scope=\"d\"}"), 0);
    EXPECT_GE(sample("penne_checkpoint_age_seconds{scope=\"d\"}"), 0);
    EXPECT_EQ(sample("penne_lease_held{scope=\"d\"}"), 0);  // no leases yet

    auto snap = pipe_->status();
    ASSERT_EQ(snap.scopes.size(), 1u);
    const auto& s = snap.scopes[0];
    EXPECT_EQ(s.id, "d");
    EXPECT_TRUE(s.stream_open);
    EXPECT_EQ(s.events_received, 9u);
    EXPECT_EQ(s.events_written, 9u);
    EXPECT_EQ(s.objects_written, 3u);
    EXPECT_EQ(s.open_batches, 0u);
    EXPECT_EQ(s.buffered_bytes, 0u);
    ASSERT_TRUE(s.last_durable_time);
    EXPECT_EQ(*s.last_durable_time, last_time);
    // Everything read is durable and the stream keeps replying: caught up.
    ASSERT_TRUE(s.lag_seconds);
    EXPECT_LT(*s.lag_seconds, 1.0);
    EXPECT_TRUE(s.checkpoint_age_seconds);
    EXPECT_TRUE(s.last_error.empty());
    EXPECT_EQ(snap.status, pipeline_status::running);

    stop();
    EXPECT_FALSE(result_);
    EXPECT_EQ(sample("penne_pipeline_status"), 0);
    EXPECT_EQ(pipe_->status().scopes[0].state, scope_activity::stopped);
    EXPECT_EQ(not_ready_reason(), "the pipeline has stopped");
}

TEST_F(PipelineTest, OpenBatchesAreSealedAtShutdownAndCountedSo) {
    make({database("d")});
    start();
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    const auto t = now_seconds();
    script_.push("d", {script_.event("d", "c", "insert", {t, 1}),
                       script_.event("d", "c", "insert", {t, 2})});
    ASSERT_TRUE(run_until([&] { return pipe_->status().scopes[0].open_batches == 1; }));
    auto s = pipe_->status().scopes[0];
    EXPECT_EQ(s.state, scope_activity::streaming);
    EXPECT_GT(s.buffered_bytes, 0u);
    EXPECT_EQ(sample("penne_buffered_bytes"), double(s.buffered_bytes));
    EXPECT_EQ(sample("rigatoni_batch_queue_size{collection=\"c\"}"), -1);  // compat off
    stop();
    EXPECT_EQ(pm_->batches_sealed.with({"d", "c", "shutdown"}).value(), 1);
    EXPECT_EQ(pm_->events_written.with({"d", "c", "insert"}).value(), 2);
    EXPECT_EQ(sample("penne_buffered_bytes"), 0);
}

TEST_F(PipelineTest, AFullBatchMakesTheNextBatchOfItsCollectionReserveItsSize) {
    cfg_.batch.max_age = 100ms;
    make({database("d")});
    start();
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    const auto t = now_seconds();
    std::vector<scripted_event> evs;
    for (std::uint32_t i = 1; i <= 4; ++i)
        evs.push_back(script_.event("d", "c", "insert", {t, i}));
    evs.push_back(script_.event("d", "other", "insert", {t, 5}));
    script_.push("d", std::move(evs));
    // c: a full batch of 3 (count), then 1 event sealed by age; other: 1 event, by age.
    ASSERT_TRUE(run_until([&] { return dest_.count() == 3; }));
    script_.push("d", {script_.event("d", "c", "insert", {t, 6})});
    ASSERT_TRUE(run_until([&] { return dest_.count() == 4; }));
    stop();
    const auto log = encoders_.log.lines();
    ASSERT_GE(log.size(), 5u);
    ASSERT_TRUE(log[0].starts_with("finish ")) << log[0];
    const auto full = std::stoul(log[0].substr(7));
    // The batch after the full one reserves its size and an eighth; the batch after one
    // sealed by age, and a collection's first batch, reserve nothing.
    EXPECT_EQ(log[1], "reserve " + std::to_string(full + full / 8));
    EXPECT_EQ(std::count_if(log.begin(), log.end(),
                            [](const std::string& s) { return s.starts_with("reserve "); }),
              1)
        << ::testing::PrintToString(log);
    EXPECT_EQ(std::count_if(log.begin(), log.end(),
                            [](const std::string& s) { return s.starts_with("finish "); }),
              4);
}

TEST_F(PipelineTest, UploadRetriesDegradeStatusAndReadinessThenRecover) {
    make({database("d")}, {.rigatoni_compat = true});
    start();
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    dest_.fail_with(make_error_code(errc::timeout));
    const auto t = now_seconds();
    script_.push(
        "d", {script_.event("d", "c", "insert", {t, 1}), script_.event("d", "c", "insert", {t, 2}),
              script_.event("d", "c", "update", {t, 3})});

    ASSERT_TRUE(run_until([&] { return pm_->upload_retries.with({"d", "timeout"}).value() >= 3; }));
    EXPECT_EQ(sample("penne_pipeline_status"), 2);  // degraded
    EXPECT_EQ(sample("rigatoni_pipeline_status"), 1);
    auto s = pipe_->status().scopes[0];
    EXPECT_EQ(s.state, scope_activity::retrying);
    EXPECT_EQ(pipe_->status().status, pipeline_status::degraded);
    EXPECT_NE(s.last_error.find("injected failure"), std::string::npos) << s.last_error;
    EXPECT_TRUE(s.last_error_time);
    // Briefly retrying is still ready; retrying for longer than not_ready_after is not.
    const double lag_before = s.lag_seconds.value_or(0);
    run_for(300ms);
    const auto reason = not_ready_reason();
    EXPECT_NE(reason.find("scope d: uploading"), std::string::npos) << reason;
    EXPECT_NE(reason.find(" to memory: retrying for"), std::string::npos) << reason;  // names it
    EXPECT_NE(reason.find("injected failure"), std::string::npos) << reason;
    // Nothing becomes durable: the lag grows.
    EXPECT_GT(pipe_->status().scopes[0].lag_seconds.value_or(0), lag_before + 0.2);

    dest_.fail_with({});
    ASSERT_TRUE(run_until([&] { return pipe_->stats().events_written == 3; }));
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    EXPECT_EQ(sample("penne_pipeline_status"), 1);
    const double retries = pm_->upload_retries.with({"d", "timeout"}).value();
    EXPECT_EQ(pm_->upload_errors.with({"d", "timeout"}).value(), retries);
    EXPECT_EQ(pm_->rig.retries.with({"timeout"}).value(), retries);
    EXPECT_EQ(pm_->rig.write_errors.with({"s3", "timeout"}).value(), retries);
    EXPECT_EQ(pm_->upload_attempt.with({"d"}).count(), std::uint64_t(retries) + 1);
    EXPECT_EQ(pm_->upload_duration.with({"d"}).count(), 1u);
    EXPECT_EQ(double(pipe_->stats().upload_retries), retries);
    // The last error stays visible after the recovery.
    EXPECT_FALSE(pipe_->status().scopes[0].last_error.empty());
    stop();
}

TEST_F(PipelineTest, StateStoreLatencyAndErrorsByOperation) {
    state_.record_failures = 2;
    make({database("d")});
    start();
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    const auto t = now_seconds();
    script_.push(
        "d", {script_.event("d", "c", "insert", {t, 1}), script_.event("d", "c", "insert", {t, 2}),
              script_.event("d", "c", "insert", {t, 3})});
    ASSERT_TRUE(run_until([&] { return pipe_->stats().events_written == 3; }));
    stop();
    EXPECT_EQ(pm_->state_store_errors.with({"record", "io_error"}).value(), 2);
    EXPECT_EQ(pm_->state_store_duration.with({"record"}).count(), 3u);  // 2 failed + 1
    EXPECT_EQ(pm_->state_store_duration.with({"load"}).count(), 1u);
    EXPECT_EQ(pm_->state_store_errors.with({"checkpoint", "io_error"}).value(), 0);
    EXPECT_EQ(pipe_->stats().state_retries, 2u);
}

TEST_F(PipelineTest, ReadyWaitsForTheStreamAndFailsWithAFatalError) {
    make({database("d"), database("e")});
    std::string reason;
    EXPECT_FALSE(pipe_->ready(reason));
    EXPECT_EQ(reason, "the pipeline has not started");
    EXPECT_EQ(pipe_->status().status, pipeline_status::stopped);
    EXPECT_EQ(pipe_->status().scopes[1].state, scope_activity::starting);

    script_.open_allowed = false;
    start();
    run_for(50ms);
    EXPECT_EQ(not_ready_reason(), "scope d: change stream not open yet");
    EXPECT_FALSE(pipe_->status().scopes[0].stream_open);
    EXPECT_EQ(pipe_->status().scopes[0].state, scope_activity::starting);
    script_.open_allowed = true;
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    EXPECT_EQ(pipe_->status().scopes[1].state, scope_activity::idle);

    // A permanent rejection is fatal: the scope fails, the others drain, run() ends.
    dest_.fail_with(make_error_code(errc::permanent_rejection));
    script_.push("e", {script_.event("e", "c", "insert", {now_seconds(), 1}),
                       script_.event("e", "c", "insert", {now_seconds(), 2}),
                       script_.event("e", "c", "insert", {now_seconds(), 3})});
    ASSERT_TRUE(run_until([&] { return done_; }));
    EXPECT_EQ(result_, errc::permanent_rejection);
    EXPECT_EQ(sample("penne_pipeline_status"), 3);
    auto snap = pipe_->status();
    EXPECT_EQ(snap.status, pipeline_status::failed);
    EXPECT_EQ(snap.scopes[1].state, scope_activity::failed);
    EXPECT_EQ(snap.scopes[0].state, scope_activity::stopped);
    EXPECT_NE(snap.scopes[1].last_error.find("injected failure"), std::string::npos);
    reason = not_ready_reason();
    EXPECT_EQ(reason.rfind("scope e: failed: writing ", 0), 0u) << reason;
    EXPECT_EQ(pm_->upload_errors.with({"e", "permanent_rejection"}).value(), 1);
    EXPECT_EQ(pm_->upload_retries.with({"e", "permanent_rejection"}).value(), 0);
}

TEST_F(PipelineTest, SilentStreamIsNotReady) {
    make({database("d")});
    start();
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    // The source answers only when the io_context runs; not running it stands in for a
    // server that stopped answering.
    std::this_thread::sleep_for(250ms);
    const auto reason = not_ready_reason();
    EXPECT_EQ(reason.rfind("scope d: no reply from the change stream for ", 0), 0u) << reason;
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    stop();
}

TEST_F(PipelineTest, StreamReconnectsAndResumesByReason) {
    make({database("d")});
    start();
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    script_.resumes = 2;  // the source resumed twice inside next()
    {
        std::lock_guard lock(script_.mu);
        script_.next_errors.push_back(make_error_code(errc::timeout));
    }
    ASSERT_TRUE(run_until([&] { return script_.opens == 2 && is_ready(); }));
    EXPECT_EQ(pm_->stream_reconnects.with({"d", "timeout"}).value(), 1);
    EXPECT_EQ(pm_->stream_resumes.with({"d", "resumable_error"}).value(), 2);
    EXPECT_EQ(pipe_->stats().source_reopens, 1u);
    EXPECT_NE(pipe_->status().scopes[0].last_error.find("change stream interrupted"),
              std::string::npos);
    EXPECT_EQ(sample("penne_pipeline_status"), 1);
    stop();
}

TEST_F(PipelineTest, StartAtOpensScopesWithoutASavedTokenThereAndATokenAlwaysWins) {
    cfg_.start_at = cluster_time{1796551200, 4};
    cfg_.scope_start_at["b"] = std::nullopt;  // this scope starts now
    make({database("a"), database("b")});
    start();
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    {
        std::lock_guard lock(script_.mu);
        ASSERT_EQ(script_.starts["a"].size(), 1u);
        EXPECT_FALSE(script_.starts["a"][0].resume_after);
        EXPECT_EQ(script_.starts["a"][0].start_at, (cluster_time{1796551200, 4}));
        ASSERT_EQ(script_.starts["b"].size(), 1u);
        EXPECT_FALSE(script_.starts["b"][0].resume_after);
        EXPECT_FALSE(script_.starts["b"][0].start_at);
        // A reopen after an error starts from the position read so far, not from start_at.
        script_.next_errors.push_back(make_error_code(errc::timeout));
    }
    ASSERT_TRUE(run_until([&] { return script_.opens == 3 && is_ready(); }));
    stop();
    {
        std::lock_guard lock(script_.mu);
        for (const auto& [scope, opens] : script_.starts) {
            for (std::size_t i = 1; i < opens.size(); ++i) {
                EXPECT_TRUE(opens[i].resume_after) << scope;
                EXPECT_FALSE(opens[i].start_at) << scope;
            }
        }
        script_.starts.clear();
    }

    // A restart finds the saved tokens: start_at is not used.
    done_ = false;
    ioc_.restart();  // it ran out of work when the first pipeline finished
    make({database("a"), database("b")});
    start();
    ASSERT_TRUE(run_until([&] { return is_ready(); })) << not_ready_reason();
    stop();
    std::lock_guard lock(script_.mu);
    for (const auto& scope : {"a", "b"}) {
        ASSERT_EQ(script_.starts[scope].size(), 1u) << scope;
        EXPECT_TRUE(script_.starts[scope][0].resume_after) << scope;
        EXPECT_FALSE(script_.starts[scope][0].start_at) << scope;
    }
}

TEST_F(PipelineTest, BackpressureTimeIsCounted) {
    cfg_.max_buffered_bytes = 64;  // one event's encoding fills it
    cfg_.batch.max_events = 1000;
    make({database("d")});
    start();
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    dest_.fail_with(make_error_code(errc::timeout));
    std::vector<scripted_event> reply;
    for (std::uint32_t i = 1; i <= 4; ++i)
        reply.push_back(script_.event("d", "c", "insert", {now_seconds(), i}));
    script_.push("d", std::move(reply));
    script_.push("d", {script_.event("d", "c", "insert", {now_seconds(), 9})});
    run_for(300ms);
    EXPECT_GE(sample("penne_backpressure_waits_total"), 1);
    EXPECT_GT(sample("penne_backpressure_seconds_total"), 0.2);
    EXPECT_GT(pipe_->stats().backpressure_waits, 0u);
    // Paused on purpose: readiness reflects the upload retries, not a silent stream.
    const auto reason = not_ready_reason();
    EXPECT_NE(reason.find("uploading"), std::string::npos) << reason;
    // The bound is checked per event: reading stopped in the middle of the first reply,
    // once an event filled it (those events were cut into a batch, waiting for S3).
    EXPECT_LT(pipe_->stats().events_received, 4u);
    EXPECT_EQ(pm_->batches_sealed.with({"d", "c", "bytes"}).value(), 1);
    dest_.fail_with({});
    // Each upload frees the room for one more event: the rest of the reply, then the
    // next one, are read and written.
    ASSERT_TRUE(run_until([&] { return pipe_->stats().events_received == 5; }));
    ASSERT_TRUE(run_until([&] { return pipe_->stats().events_written >= 4; }));
    stop();
    EXPECT_EQ(pipe_->stats().events_written, 5u);
    EXPECT_GE(pm_->batches_sealed.with({"d", "c", "bytes"}).value(), 2);
    EXPECT_EQ(pipe_->stats().buffered_bytes, 0u);
}

TEST_F(PipelineTest, CollectionLabelsOffAggregateIntoTheScope) {
    make({database("d")}, {}, {.per_collection_labels = false});
    start();
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    const auto t = now_seconds();
    script_.push(
        "d", {script_.event("d", "a", "insert", {t, 1}), script_.event("d", "b", "insert", {t, 2}),
              script_.event("d", "c", "insert", {t, 3})});
    ASSERT_TRUE(run_until([&] { return pipe_->stats().events_received == 3; }));
    stop();
    EXPECT_EQ(sample("penne_events_received_total{scope=\"d\",operation=\"insert\"}"), 3);
    EXPECT_EQ(sample("penne_events_written_total{scope=\"d\",operation=\"insert\"}"), 3);
}

TEST_F(PipelineTest, DeploymentScopeLabelsCollectionsWithTheirDatabase) {
    make({{watch_scope::level::deployment, {}, {}, {}, {}}});
    start();
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    script_.push("*", {script_.event("x", "c", "insert", {now_seconds(), 1}),
                       script_.event("y", "c", "insert", {now_seconds(), 2})});
    ASSERT_TRUE(run_until([&] { return pipe_->stats().events_received == 2; }));
    stop();
    EXPECT_EQ(pm_->events_written.with({"*", "x.c", "insert"}).value(), 1);
    EXPECT_EQ(pm_->events_written.with({"*", "y.c", "insert"}).value(), 1);
}

// Every event reaches its own collection, whatever the order: more collections than the
// router's recently-used check holds, in a different interleaving each round, and names
// that share a length and differ only in their first byte or in where the database ends.
TEST_F(PipelineTest, EventsReachTheirOwnCollectionAcrossManyInterleavedCollections) {
    make({{watch_scope::level::deployment, {}, {}, {}, {}}});
    start();
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    std::vector<std::pair<std::string, std::string>> names = {
        {"ab", "c"}, {"a", "bc"}, {"x", "c1"}, {"y", "c1"}, {"x", "d1"}};
    for (int i = 0; i < 12; ++i)
        names.emplace_back("m", "coll" + std::to_string(i % 10) + (i < 10 ? "" : "x"));
    std::map<std::string, std::int64_t> expect;
    std::vector<scripted_event> reply;
    const auto t = now_seconds();
    std::uint32_t inc = 0;
    for (std::size_t round = 0; round < 5; ++round)
        for (std::size_t k = 0; k < names.size(); ++k) {
            const auto& [db, coll] = names[(k * 7 + round) % names.size()];
            for (std::size_t rep = 0; rep <= k % 3; ++rep) {
                reply.push_back(script_.event(db, coll, "insert", {t, ++inc}));
                ++expect[db + "." + coll];
            }
        }
    script_.push("*", std::move(reply));
    ASSERT_TRUE(run_until([&] { return pipe_->stats().events_received == inc; }));
    stop();
    ASSERT_EQ(expect.size(), names.size());
    for (const auto& [label, n] : expect)
        EXPECT_EQ(pm_->events_written.with({"*", label, "insert"}).value(), n) << label;
}

TEST_F(PipelineTest, WithoutMetricsStatusStillWorks) {
    make({database("d")}, {}, {}, /*with_metrics=*/false);
    start();
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    script_.push("d", {script_.event("d", "c", "insert", {now_seconds(), 1})});
    ASSERT_TRUE(run_until([&] { return pipe_->status().scopes[0].open_batches == 1; }));
    stop();
    EXPECT_EQ(pipe_->status().scopes[0].events_written, 1u);
    EXPECT_EQ(pm_->events_received.with({"d", "c", "insert"}).value(), 0);
    EXPECT_EQ(sample("penne_pipeline_status"), 0);
}

TEST_F(PipelineTest, StatusAndScrapesFromOtherThreadsWhileRunning) {
    make({database("d"), database("e")}, {.rigatoni_compat = true});
    start();
    std::vector<std::thread> workers;
    for (int i = 0; i < 2; ++i)
        workers.emplace_back([&] { ioc_.run(); });
    constexpr int replies = 200;
    std::thread feeder([&] {
        for (int i = 0; i < replies; ++i) {
            for (std::string scope : {"d", "e"})
                script_.push(scope, {script_.event(scope, "c" + std::to_string(i % 3), "insert",
                                                   {now_seconds(), std::uint32_t(i)})});
            std::this_thread::sleep_for(100us);
        }
    });
    std::size_t scrapes = 0;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    // Per scope, c0 and c1 keep one event in an open batch (max_events 3) until the stop.
    while (pipe_->stats().events_written < 2 * replies - 4 &&
           std::chrono::steady_clock::now() < deadline) {
        auto snap = pipe_->status();
        std::string reason;
        pipe_->ready(reason);
        scrapes += registry_->render().size() > 0;
        EXPECT_EQ(snap.scopes.size(), 2u);
        std::this_thread::sleep_for(200us);
    }
    feeder.join();
    // A stop does not drain the stream: wait until every reply was read.
    while (pipe_->stats().events_received < 2 * replies &&
           std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
    asio::post(strand_, [&] { stop_.emit(asio::cancellation_type::terminal); });
    for (auto& w : workers)
        w.join();
    ASSERT_TRUE(done_);
    EXPECT_GT(scrapes, 0u);
    double written = 0;
    for (std::string scope : {"d", "e"})
        for (int c = 0; c < 3; ++c)
            written += pm_->events_written.with({scope, "c" + std::to_string(c), "insert"}).value();
    EXPECT_EQ(written, 2 * replies);
    EXPECT_EQ(sample("penne_buffered_bytes"), 0);
}

// "Compresses" by prefixing "z:", on whichever thread calls it; the first call is slow, so
// later batches finish compressing first.
class slow_first_compressor final : public compressor {
public:
    std::string_view extension() const noexcept override { return "z"; }
    std::string_view content_encoding() const noexcept override { return "test"; }
    error_code compress(std::string_view in, std::string& out) override {
        const int call = calls.fetch_add(1);
        if (call == 0) {
            // Long enough for the other batches to pass through the other thread.
            for (int i = 0; i < 200 && finished < 3; ++i)
                std::this_thread::sleep_for(5ms);
            finished_while_first_ran = finished.load();
        }
        out = "z:";
        out.append(in);
        ++finished;
        return {};
    }
    std::atomic<int> calls{0};
    std::atomic<int> finished{0};
    int finished_while_first_ran = -1;
};

// Burns about 2 ms of this thread's CPU per batch, then stores it as it is.
class busy_compressor final : public compressor {
public:
    std::string_view extension() const noexcept override { return "b"; }
    std::string_view content_encoding() const noexcept override { return "test"; }
    error_code compress(std::string_view in, std::string& out) override {
        auto cpu = [] {
            timespec t{};
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
            return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
        };
        const double until = cpu() + 0.002;
        while (cpu() < until) {
        }
        out.assign(in);
        ++calls;
        return {};
    }
    std::atomic<int> calls{0};
};

// penne_compress_cpu_seconds_total counts the CPU time compression takes, on the strand's
// thread and off it (compress_off_strand); without a compressor it stays at 0 (above).
class CompressionCpuTest : public PipelineTest {
protected:
    void expect_counted(bool off_strand) {
        busy_compressor z;
        compressor_ = &z;
        cfg_.compress_off_strand = off_strand;
        cfg_.batch.max_events = 2;
        make({database("d")});
        start();
        ASSERT_TRUE(run_until([&] { return is_ready(); }));
        std::vector<scripted_event> reply;
        for (std::uint32_t i = 1; i <= 6; ++i)
            reply.push_back(script_.event("d", "c", "insert", {now_seconds(), i}));
        script_.push("d", std::move(reply));
        ASSERT_TRUE(run_until([&] { return pipe_->stats().events_written == 6; }));
        stop();
        EXPECT_EQ(z.calls.load(), 3);
        // Three batches of ~2 ms each (CPU time, whatever else ran on the core).
        EXPECT_GE(sample("penne_compress_cpu_seconds_total"), 0.006);
        EXPECT_LT(sample("penne_compress_cpu_seconds_total"), 1.0);
    }
};

TEST_F(CompressionCpuTest, OnTheStrand) {
    expect_counted(false);
}

TEST_F(CompressionCpuTest, OffTheStrand) {
    expect_counted(true);
}

TEST_F(PipelineTest, CompressionOffTheStrandKeepsSealOrderAndWritesEveryBatchOnce) {
    slow_first_compressor z;
    compressor_ = &z;
    cfg_.compress_off_strand = true;
    cfg_.batch.max_events = 2;
    make({database("d")});
    start();
    std::vector<std::thread> workers;
    for (int i = 0; i < 2; ++i)
        workers.emplace_back([&] { ioc_.run(); });
    constexpr std::uint32_t events = 40;
    std::vector<scripted_event> reply;
    for (std::uint32_t i = 1; i <= events; ++i)
        reply.push_back(script_.event("d", "c", "insert", {now_seconds(), i}));
    script_.push("d", std::move(reply));
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (pipe_->stats().events_written < events && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(1ms);
    asio::post(strand_, [&] { stop_.emit(asio::cancellation_type::terminal); });
    for (auto& w : workers)
        w.join();
    ASSERT_TRUE(done_);
    EXPECT_FALSE(result_) << diag_.message;
    EXPECT_EQ(pipe_->stats().events_written, events);
    EXPECT_EQ(z.calls, int(events / 2));
    // Compression left the scope's strand: while the first batch was being compressed, the
    // strand went on sealing and the other thread compressed later batches.
    EXPECT_GE(z.finished_while_first_ran, 3);
    EXPECT_EQ(dest_.count(), events / 2);
    for (const auto& [key, body] : dest_.objects)
        EXPECT_EQ(body.substr(0, 2), "z:") << key;
    // Manifest entries were written strictly in seal order (their seq), each once.
    std::lock_guard lock(state_.mu);
    ASSERT_EQ(state_.recorded.size(), events / 2);
    for (std::size_t i = 0; i < state_.recorded.size(); ++i)
        EXPECT_EQ(state_.recorded[i], state_.recorded[0] + i);
    EXPECT_EQ(pipe_->stats().buffered_bytes, 0u);
}

// Batches sealed while a manifest record is in flight are recorded together, in one
// record_many() call, in seal order; a call that fails after a prefix is repeated whole.
class RecordGroupTest : public PipelineTest {
protected:
    void check(bool fail_once) {
        state_.hold_records = true;
        state_.fail_groups_after_first = fail_once ? 1 : 0;
        cfg_.batch.max_events = 2;
        make({database("d")});
        start();
        std::vector<scripted_event> reply;
        for (std::uint32_t i = 1; i <= 2; ++i)
            reply.push_back(script_.event("d", "c", "insert", {now_seconds(), i}));
        script_.push("d", std::move(reply));
        // The first batch's record is held; nine more batches seal meanwhile.
        ASSERT_TRUE(run_until([&] {
            std::lock_guard lock(state_.mu);
            return state_.groups.size() == 1;
        }));
        reply.clear();
        for (std::uint32_t i = 3; i <= 20; ++i)
            reply.push_back(script_.event("d", "c", "insert", {now_seconds(), i}));
        script_.push("d", std::move(reply));
        ASSERT_TRUE(run_until([&] { return pipe_->stats().batches_sealed[0] == 10; }));
        state_.hold_records = false;
        ASSERT_TRUE(run_until([&] { return pipe_->stats().events_written == 20; }));
        stop();
        EXPECT_FALSE(result_) << diag_.message;
        EXPECT_EQ(dest_.count(), 10u);
        std::lock_guard lock(state_.mu);
        // One call for the first batch, one for the nine sealed while it was held (twice when
        // the first attempt failed after writing its first entry).
        const std::vector<std::size_t> want =
            fail_once ? std::vector<std::size_t>{1, 9, 9} : std::vector<std::size_t>{1, 9};
        EXPECT_EQ(state_.groups, want);
        // Seal order, each entry once; after the failure the group's first entry is written
        // again by the retry (an idempotent replace), never a later one before it.
        std::vector<std::uint64_t> want_seq;
        for (std::uint64_t i = 0; i < 10; ++i) {
            want_seq.push_back(state_.recorded[0] + i);
            if (fail_once && i == 1)
                want_seq.push_back(state_.recorded[0] + i);
        }
        EXPECT_EQ(state_.recorded, want_seq);
        EXPECT_EQ(pipe_->stats().buffered_bytes, 0u);
    }
};

TEST_F(RecordGroupTest, BatchesSealedWhileARecordIsInFlightAreRecordedTogether) {
    check(false);
}

TEST_F(RecordGroupTest, AGroupThatFailsAfterAPrefixIsRecordedAgainWhole) {
    check(true);
}

// While objects keep becoming durable, a scope checkpoints at most once per
// checkpoint_min_interval; stopping saves the last position at once.
TEST_F(PipelineTest, CheckpointsAreCoalescedWhileObjectsKeepLanding) {
    cfg_.batch.max_events = 1;
    cfg_.checkpoint_min_interval = 300ms;
    make({database("d")});
    start();
    std::vector<scripted_event> reply;
    reply.push_back(script_.event("d", "c", "insert", {now_seconds(), 1}));
    script_.push("d", std::move(reply));
    // The starting position and the first object.
    ASSERT_TRUE(run_until([&] { return pipe_->stats().events_written == 1; }));
    ASSERT_TRUE(run_until([&] { return pipe_->stats().checkpoints_saved >= 1; }));
    const auto before = pipe_->stats().checkpoints_saved.load();
    const auto t0 = std::chrono::steady_clock::now();
    // 20 objects within well under the interval: one or two checkpoints, not 20.
    for (std::uint32_t i = 2; i <= 21; ++i) {
        std::vector<scripted_event> one;
        one.push_back(script_.event("d", "c", "insert", {now_seconds(), i}));
        script_.push("d", std::move(one));
    }
    ASSERT_TRUE(run_until([&] { return pipe_->stats().events_written == 21; }));
    run_for(50ms);
    if (std::chrono::steady_clock::now() - t0 < 250ms) {
        EXPECT_LE(pipe_->stats().checkpoints_saved.load() - before, 1u);
    }
    // The last object's position is saved within the interval, and at once when stopping.
    ASSERT_TRUE(run_until([&] { return state_.inner.snapshot("d").entries.empty(); }));
    stop();
    EXPECT_FALSE(result_) << diag_.message;
    EXPECT_LE(pipe_->stats().checkpoints_saved.load() - before, 4u);
}

// By collection: "drop" is left out, "rewrite" gets its document with a marker appended
// (same token), "bad" fails, "retoken" gets a different token; the rest is kept.
class by_collection_filter final : public event_filter {
public:
    static constexpr std::string_view marker = "<rewritten>";
    filter_verdict apply(const change_event& in, filtered_event& out,
                         diagnostics& diag) const override {
        if (in.coll == "drop")
            return filter_verdict::drop;
        if (in.coll == "bad") {
            diag.message = "refused";
            return filter_verdict::fail;
        }
        if (in.coll != "rewrite" && in.coll != "retoken")
            return filter_verdict::keep;
        out.storage.assign(in.raw.begin(), in.raw.end());
        out.storage.insert(out.storage.end(), marker.begin(), marker.end());
        out.event = in;
        out.event.raw = {out.storage.data(), out.storage.size()};
        out.event.token = {out.storage.data(), in.token.size()};
        if (in.coll == "retoken")
            out.event.token = out.event.raw;
        return filter_verdict::replace;
    }
};

TEST_F(PipelineTest, FilterDropsAndReplacesAndTheWatermarkPassesDroppedEvents) {
    by_collection_filter f;
    filter_ = &f;
    cfg_.batch.max_events = 2;
    make({database("d")});
    start();
    ASSERT_TRUE(run_until([&] { return is_ready(); }));
    const auto t = now_seconds();
    auto kept = script_.event("d", "keep", "insert", {t, 1});
    auto rewritten = script_.event("d", "rewrite", "insert", {t, 2});
    auto last = script_.event("d", "drop", "insert", {t, 5});
    script_.push("d", {kept, script_.event("d", "keep", "insert", {t, 2}), rewritten,
                       script_.event("d", "rewrite", "insert", {t, 4}),
                       script_.event("d", "drop", "insert", {t, 3}), last});
    ASSERT_TRUE(run_until([&] { return pipe_->stats().events_written == 4; }));
    EXPECT_EQ(pipe_->stats().events_received, 6u);
    EXPECT_EQ(pipe_->stats().events_filtered, 2u);
    // The newest position is a dropped event: once the kept ones are durable the checkpoint
    // moves past it (the reply's post-batch token, which is the last dropped event's).
    ASSERT_TRUE(run_until([&] {
        auto st = state_.inner.snapshot("d");
        return st.watermark && st.entries.empty() &&
               *st.watermark == resume_token({last.token.data(), last.token.size()});
    })) << "the watermark must reach the last event, which was dropped";
    stop();
    EXPECT_FALSE(result_) << diag_.message;
    std::lock_guard lock(dest_.mu);
    ASSERT_EQ(dest_.objects.size(), 2u);  // keep and rewrite; none for drop
    for (const auto& [key, body] : dest_.objects) {
        EXPECT_EQ(key.find("drop"), std::string::npos) << key;
        const bool rewrite = key.find("rewrite") != std::string::npos;
        std::size_t marks = 0;
        for (auto at = body.find(by_collection_filter::marker); at != std::string::npos;
             at = body.find(by_collection_filter::marker, at + 1))
            ++marks;
        EXPECT_EQ(marks, rewrite ? 2u : 0u) << key;
    }
}

TEST_F(PipelineTest, FilterFailureOrChangedTokenStopsTheScope) {
    by_collection_filter f;
    filter_ = &f;
    for (std::string coll : {"bad", "retoken"}) {
        SCOPED_TRACE(coll);
        done_ = false;
        ioc_.restart();  // the previous run let it run out of work
        make({database("d")});
        start();
        ASSERT_TRUE(run_until([&] { return is_ready(); }));
        script_.push("d", {script_.event("d", coll, "insert", {now_seconds(), 1})});
        ASSERT_TRUE(run_until([&] { return done_; }));
        EXPECT_EQ(result_, errc::unencodable_event);
        EXPECT_NE(diag_.message.find("event filter"), std::string::npos) << diag_.message;
        EXPECT_EQ(pipe_->stats().events_written, 0u);
        pipe_.reset();
    }
}

}  // namespace
}  // namespace penne::test
