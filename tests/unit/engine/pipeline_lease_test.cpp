// The pipeline under leases, in memory: instances sharing scopes through an in-memory
// lease table (standing in for Redis: leases with expiry, a fencing counter per scope, a
// live-instance set, and fenced writes into a memory state store). Sources replay a
// per-scope event log from the saved watermark, like a change stream; objects land in a
// memory destination and every event must be in exactly one object.

#include "test_events.hpp"

#include <penne/lease.hpp>
#include <penne/memory_state_store.hpp>
#include <penne/metrics.hpp>
#include <penne/pipeline_engine.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <set>

namespace penne::test {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using clock = std::chrono::steady_clock;
constexpr auto nothrow = asio::as_tuple(asio::use_awaitable);

// Per scope, the events "MongoDB" produced, as token numbers base+1, base+2, ...; token
// base is the stream's starting position.
struct event_log {
    std::mutex mu;
    std::map<std::string, std::uint64_t> base;
    std::map<std::string, std::uint64_t> count;
    // While set, next() holds its reply and ignores cancellation, like a getMore reply
    // already on its way (or prefetched) when the scope is told to stop.
    std::atomic<bool> stalled{false};
    std::atomic<int> stalled_readers{0};

    void append(const std::string& scope, std::uint64_t n) {
        std::lock_guard lock(mu);
        count[scope] += n;
    }
};

class log_source final : public change_source {
public:
    log_source(asio::any_io_executor ex, event_log& log, const watch_scope& scope)
        : ex_(ex), log_(log), scope_(scope), id_(scope.id()) {
        std::lock_guard lock(log_.mu);
        base_ = log_.base.at(id_);
    }

    asio::awaitable<error_code> open(const start_position& start, diagnostics& diag) override {
        pos_ = 0;
        if (start.resume_after) {
            std::lock_guard lock(log_.mu);
            const auto n = log_.count[id_];
            bool found = false;
            for (std::uint64_t k = 0; k <= n && !found; ++k) {
                if (token(base_ + k) == *start.resume_after) {
                    pos_ = k;
                    found = true;
                }
            }
            if (!found) {
                diag.message = "unknown resume token";
                co_return make_error_code(errc::history_lost);
            }
        }
        co_return error_code{};
    }

    asio::awaitable<error_code> next(event_batch& out, diagnostics&) override {
        out.clear();
        if (log_.stalled) {
            ++log_.stalled_readers;
            while (log_.stalled) {
                asio::steady_timer t(ex_, 1ms);
                co_await t.async_wait(nothrow);  // a cancellation does not end the wait
            }
            --log_.stalled_readers;
        }
        std::uint64_t end;
        {
            std::lock_guard lock(log_.mu);
            end = std::min(log_.count[id_], pos_ + 5);
        }
        if (end == pos_) {
            asio::steady_timer t(ex_, 2ms);
            auto [ec] = co_await t.async_wait(nothrow);
            if (ec)
                co_return ec;
        }
        current_.clear();
        for (std::uint64_t k = pos_ + 1; k <= end; ++k)
            current_.push_back(make_event(base_ + k, scope_.coll, scope_.db));
        for (const auto& e : current_)
            out.events.push_back(e.view());
        pos_ = end;
        last_ = token_bson(base_ + pos_);
        out.post_batch_token = resume_token({last_.data(), last_.size()});
        co_return error_code{};
    }

    asio::awaitable<void> close() override { co_return; }
    std::uint64_t resume_count() const noexcept override { return 0; }

private:
    asio::any_io_executor ex_;
    event_log& log_;
    watch_scope scope_;
    std::string id_;
    std::uint64_t base_ = 0;
    std::uint64_t pos_ = 0;
    std::vector<owned_event> current_;
    std::vector<std::uint8_t> last_;
};

class log_sources final : public source_factory {
public:
    explicit log_sources(event_log& log) : log_(log) {}
    std::unique_ptr<change_source> make(asio::any_io_executor ex,
                                        const watch_scope& scope) override {
        return std::make_unique<log_source>(ex, log_, scope);
    }

private:
    event_log& log_;
};

// One line per event: the hex of its token.
class hex_encoder final : public batch_encoder {
public:
    error_code append(const change_event& ev, diagnostics&) override {
        buf_ += resume_token(ev.token).to_hex();
        buf_ += '\n';
        return {};
    }
    std::size_t buffered_bytes() const noexcept override { return buf_.size(); }
    void finish(std::string& out) override { out = std::move(buf_); }

private:
    std::string buf_;
};

class hex_encoders final : public encoder_factory {
public:
    encoder_info info() const noexcept override { return {"txt", "text/plain"}; }
    std::unique_ptr<batch_encoder> open(std::string_view) const override {
        return std::make_unique<hex_encoder>();
    }
};

class memory_destination final : public destination {
public:
    asio::awaitable<error_code> put(const sealed_object& obj, diagnostics&) override {
        std::lock_guard lock(mu);
        objects[std::string(obj.key)] = std::string(obj.body);
        co_return error_code{};
    }
    asio::awaitable<error_code> check(diagnostics&) override { co_return error_code{}; }
    std::string describe() const override { return "memory"; }

    // Token hex -> how many objects hold it.
    std::map<std::string, int> occurrences() {
        std::lock_guard lock(mu);
        std::map<std::string, int> seen;
        for (auto& [key, body] : objects) {
            std::size_t at = 0;
            while (at < body.size()) {
                auto nl = body.find('\n', at);
                ++seen[body.substr(at, nl - at)];
                at = nl + 1;
            }
        }
        return seen;
    }

    std::mutex mu;
    std::map<std::string, std::string> objects;
};

// The shared lease table ("Redis").
struct lease_table {
    struct lease {
        std::string owner;
        std::uint64_t fence = 0;
        clock::time_point expires;
    };
    std::mutex mu;
    std::map<std::string, lease> leases;
    std::map<std::string, std::uint64_t> fences;
    std::map<std::string, std::uint64_t> released;
    std::map<std::string, clock::time_point> instances;
    memory_state_store state;
    bool down = false;  // every operation times out
    int refused_writes = 0;

    // Under mu.
    bool holds(const std::string& id, const std::string& owner, std::uint64_t fence) {
        auto it = leases.find(id);
        return it != leases.end() && it->second.expires > clock::now() &&
               it->second.owner == owner && it->second.fence == fence;
    }
    // Another owner takes the scope, as after an expiry elsewhere.
    void steal(const std::string& id) {
        std::lock_guard lock(mu);
        leases[id] = {"thief", ++fences[id], clock::now() + 1h};
    }
    void vacate(const std::string& id) {
        std::lock_guard lock(mu);
        leases.erase(id);
    }
    std::size_t held_count() {
        std::lock_guard lock(mu);
        std::size_t n = 0;
        for (auto& [id, l] : leases)
            n += l.expires > clock::now();
        return n;
    }
};

class memory_lease_store final : public lease_store {
public:
    memory_lease_store(lease_table& t, std::string owner) : t_(t), owner_(std::move(owner)) {}
    const std::string& owner() const noexcept override { return owner_; }

    asio::awaitable<error_code> acquire(const std::string& id, std::chrono::milliseconds ttl,
                                        lease_grant& out, diagnostics& diag) override {
        std::lock_guard lock(t_.mu);
        if (t_.down)
            co_return errc::timeout;
        auto it = t_.leases.find(id);
        if (it != t_.leases.end() && it->second.expires > clock::now() &&
            it->second.owner != owner_) {
            diag.message = "held by " + it->second.owner;
            co_return errc::lease_lost;
        }
        const auto prev = t_.fences[id];
        out.fence = ++t_.fences[id];
        out.takeover = prev != 0 && t_.released[id] != prev;
        t_.leases[id] = {owner_, out.fence, clock::now() + ttl};
        co_return error_code{};
    }
    asio::awaitable<error_code> refresh(const std::string& id, std::uint64_t fence,
                                        std::chrono::milliseconds ttl, diagnostics&) override {
        std::lock_guard lock(t_.mu);
        if (t_.down)
            co_return errc::timeout;
        if (!t_.holds(id, owner_, fence))
            co_return errc::lease_lost;
        t_.leases[id].expires = clock::now() + ttl;
        co_return error_code{};
    }
    asio::awaitable<error_code> release(const std::string& id, std::uint64_t fence,
                                        diagnostics&) override {
        std::lock_guard lock(t_.mu);
        if (t_.down)
            co_return errc::timeout;
        if (t_.holds(id, owner_, fence)) {
            t_.leases.erase(id);
            t_.released[id] = fence;
        }
        co_return error_code{};
    }
    asio::awaitable<error_code> heartbeat(std::chrono::milliseconds ttl, std::size_t& live,
                                          diagnostics&) override {
        std::lock_guard lock(t_.mu);
        if (t_.down)
            co_return errc::timeout;
        const auto now = clock::now();
        t_.instances[owner_] = now + ttl;
        live = 0;
        for (auto& [o, until] : t_.instances)
            live += until > now;
        co_return error_code{};
    }
    asio::awaitable<error_code> withdraw(diagnostics&) override {
        std::lock_guard lock(t_.mu);
        t_.instances.erase(owner_);
        co_return error_code{};
    }
    asio::awaitable<error_code> record(const std::string& id, std::uint64_t fence,
                                       const manifest_entry& e, diagnostics& diag) override {
        if (auto ec = check(id, fence, diag))
            co_return ec;
        co_return co_await t_.state.record(id, e, diag);
    }
    asio::awaitable<error_code> commit(const std::string& id, std::uint64_t fence,
                                       const commit_request& r, diagnostics& diag) override {
        if (auto ec = check(id, fence, diag))
            co_return ec;
        co_return co_await t_.state.commit(id, r, diag);
    }

private:
    error_code check(const std::string& id, std::uint64_t fence, diagnostics& diag) {
        std::lock_guard lock(t_.mu);
        if (t_.down)
            return errc::timeout;
        if (!t_.holds(id, owner_, fence)) {
            ++t_.refused_writes;
            diag.message = "fence " + std::to_string(fence) + " of " + owner_ + " is stale";
            return errc::lease_lost;
        }
        return {};
    }

    lease_table& t_;
    std::string owner_;
};

// One penne instance: its lease store, metrics and pipeline.
struct instance {
    instance(asio::io_context& ioc, const pipeline_config& cfg, pipeline_services svc,
             lease_table& table, std::string owner)
        : leases(table, std::move(owner)), registry(), pm(registry) {
        svc.leases = &leases;
        svc.state = &table.state;
        svc.metrics = &pm;
        pipe = std::make_unique<pipeline_engine>(ioc.get_executor(), cfg, svc);
    }
    void start(asio::io_context& ioc) {
        asio::co_spawn(
            ioc, pipe->run(diag),
            asio::bind_cancellation_slot(stop.slot(), [this](std::exception_ptr e, error_code ec) {
                ASSERT_FALSE(e);
                result = ec;
                done = true;
            }));
    }
    std::size_t held() const {
        std::size_t n = 0;
        for (auto& s : pipe->status().scopes)
            n += s.lease_held;
        return n;
    }
    double sample(const std::string& series) {
        const auto text = registry.render();
        const auto at = text.find("\n" + series + " ");
        if (at == std::string::npos)
            return -1;
        return std::strtod(text.c_str() + at + series.size() + 2, nullptr);
    }

    memory_lease_store leases;
    metrics_registry registry;
    pipeline_metrics pm;
    std::unique_ptr<pipeline_engine> pipe;
    asio::cancellation_signal stop;
    diagnostics diag;
    error_code result;
    bool done = false;
};

class PipelineLeaseTest : public ::testing::Test {
protected:
    void SetUp() override {
        diagnostics d;
        ASSERT_FALSE(key_template::parse("flat", "p", keys_, d)) << d.message;
        cfg_.batch.max_events = 4;
        cfg_.batch.max_age = 20ms;
        cfg_.checkpoint_interval = 10ms;
        cfg_.retry.initial_delay = 1ms;
        cfg_.retry.max_delay = 5ms;
        cfg_.shutdown_timeout = 5s;
        cfg_.lease_ttl = 300ms;
        cfg_.lease_retry_interval = 30ms;
    }

    void scopes(int n) {
        for (int i = 0; i < n; ++i) {
            watch_scope s{watch_scope::level::collection, "d", "c" + std::to_string(i), {}, {}};
            log_.base[s.id()] = (static_cast<std::uint64_t>(i) + 1) * 1'000'000;
            log_.count[s.id()] = 0;
            cfg_.scopes.push_back(std::move(s));
        }
    }

    std::unique_ptr<instance> make(std::string owner) {
        pipeline_services svc;
        svc.sources = &sources_;
        svc.encoder = &encoders_;
        svc.dest = &dest_;
        svc.keys = &keys_;
        auto i = std::make_unique<instance>(ioc_, cfg_, svc, table_, std::move(owner));
        i->start(ioc_);
        return i;
    }

    void append_all(std::uint64_t n) {
        for (auto& s : cfg_.scopes)
            log_.append(s.id(), n);
    }

    std::uint64_t produced() {
        std::lock_guard lock(log_.mu);
        std::uint64_t n = 0;
        for (auto& [id, c] : log_.count)
            n += c;
        return n;
    }

    bool run_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
        const auto deadline = clock::now() + timeout;
        while (!pred()) {
            if (clock::now() > deadline)
                return false;
            ioc_.run_one_for(5ms);
        }
        return true;
    }
    void run_for(std::chrono::milliseconds d) {
        const auto until = clock::now() + d;
        while (clock::now() < until)
            ioc_.run_one_for(2ms);
    }

    bool all_written() { return dest_.occurrences().size() == produced(); }

    // One scope, held by instance "a", with `n` events written.
    std::unique_ptr<instance> one_scope_written(std::uint64_t n) {
        scopes(1);
        auto a = make("a");
        EXPECT_TRUE(run_until([&] { return a->held() == 1; }));
        append_all(n);
        EXPECT_TRUE(run_until([&] { return all_written(); }));
        return a;
    }

    void stop(instance& i) {
        i.stop.emit(asio::cancellation_type::terminal);
        ASSERT_TRUE(run_until([&] { return i.done; }));
        EXPECT_FALSE(i.result) << i.result.message() << ": " << i.diag.message;
    }

    void expect_exactly_once() {
        auto seen = dest_.occurrences();
        std::lock_guard lock(log_.mu);
        std::uint64_t missing = 0, duplicated = 0, expected = 0;
        for (auto& [id, n] : log_.count) {
            for (std::uint64_t k = 1; k <= n; ++k) {
                ++expected;
                auto it = seen.find(token(log_.base[id] + k).to_hex());
                if (it == seen.end())
                    ++missing;
                else if (it->second > 1)
                    ++duplicated;
            }
        }
        EXPECT_EQ(missing, 0u);
        EXPECT_EQ(duplicated, 0u);
        EXPECT_EQ(seen.size(), expected) << "events that were never produced";
    }

    asio::io_context ioc_;
    event_log log_;
    log_sources sources_{log_};
    hex_encoders encoders_;
    memory_destination dest_;
    lease_table table_;
    key_template keys_;
    pipeline_config cfg_;
};

TEST_F(PipelineLeaseTest, ASingleInstanceTakesEveryScopeAndReleasesThemOnStop) {
    scopes(3);
    auto a = make("a");
    ASSERT_TRUE(run_until([&] { return a->held() == 3; }));
    EXPECT_EQ(a->pipe->status().lease_owner, "a");
    append_all(10);
    ASSERT_TRUE(run_until([&] { return all_written(); }));
    std::string reason;
    EXPECT_TRUE(run_until([&] { return a->pipe->ready(reason); })) << reason;
    run_for(400ms);  // longer than the TTL: refreshes keep the leases
    EXPECT_EQ(a->held(), 3u);
    EXPECT_GE(a->sample("penne_lease_refreshes_total{scope=\"d.c0\"}"), 1);
    stop(*a);
    EXPECT_EQ(table_.held_count(), 0u) << "leases are released after the final checkpoint";
    EXPECT_EQ(a->sample("penne_lease_releases_total{scope=\"d.c1\"}"), 1);
    EXPECT_EQ(a->sample("penne_lease_held{scope=\"d.c1\"}"), 0);
    expect_exactly_once();
}

TEST_F(PipelineLeaseTest, TwoInstancesSpreadTheScopesFairlyAndWriteEveryEventOnce) {
    scopes(4);
    auto a = make("a");
    ASSERT_TRUE(run_until([&] { return a->held() == 4; }));
    append_all(12);
    auto b = make("b");
    // a holds more than ceil(4 / 2) now: it hands two scopes over gracefully.
    ASSERT_TRUE(run_until([&] { return a->held() == 2 && b->held() == 2; }))
        << a->held() << " " << b->held();
    append_all(12);
    ASSERT_TRUE(run_until([&] { return all_written(); }));
    run_for(200ms);
    EXPECT_EQ(a->held(), 2u);
    EXPECT_EQ(b->held(), 2u);
    for (auto& s : b->pipe->status().scopes)
        EXPECT_EQ(s.state == scope_activity::standby, !s.lease_held) << s.id;
    stop(*a);
    // b takes a's scopes once a released them (no need to wait for a TTL).
    ASSERT_TRUE(run_until([&] { return b->held() == 4; }));
    append_all(5);
    ASSERT_TRUE(run_until([&] { return all_written(); }));
    stop(*b);
    expect_exactly_once();
}

TEST_F(PipelineLeaseTest, AStolenLeaseStopsTheScopeWithoutFailingThePipelineAndIsRetaken) {
    auto a = one_scope_written(20);
    const std::string id = cfg_.scopes[0].id();
    table_.steal(id);
    // The next refresh is refused: the scope stops at once, the pipeline keeps running.
    ASSERT_TRUE(run_until([&] { return a->held() == 0; }));
    EXPECT_EQ(a->sample("penne_lease_losses_total{scope=\"d.c0\"}"), 1);
    EXPECT_EQ(a->pipe->status().scopes[0].state, scope_activity::standby);
    append_all(20);  // the thief's to write; a must not
    run_for(150ms);
    EXPECT_FALSE(a->done);
    EXPECT_EQ(a->held(), 0u);
    EXPECT_GE(
        a->sample("penne_lease_acquire_failures_total{scope=\"d.c0\",reason=\"already_held\"}"), 1);
    // The thief vanishes without releasing: a takes over and writes the rest once.
    table_.vacate(id);
    ASSERT_TRUE(run_until([&] { return a->held() == 1; }));
    EXPECT_EQ(a->sample("penne_lease_takeovers_total{scope=\"d.c0\"}"), 1);
    ASSERT_TRUE(run_until([&] { return all_written(); }));
    stop(*a);
    expect_exactly_once();
}

TEST_F(PipelineLeaseTest, AFencedWriteRefusedBeforeAnyRefreshLosesTheLeaseAtOnce) {
    cfg_.lease_ttl = 30s;  // no refresh for 10 s: only the fenced write can notice
    auto a = one_scope_written(8);
    const std::string id = cfg_.scopes[0].id();
    const auto written = dest_.occurrences().size();
    table_.steal(id);
    append_all(8);
    ASSERT_TRUE(run_until([&] { return a->held() == 0; }, 2s));
    EXPECT_GE(table_.refused_writes, 1);
    run_for(100ms);
    EXPECT_EQ(dest_.occurrences().size(), written)
        << "nothing is uploaded without a recorded manifest entry";
    EXPECT_FALSE(a->done) << "a lost lease is not a pipeline failure";
    table_.vacate(id);
    ASSERT_TRUE(run_until([&] { return a->held() == 1; }));
    ASSERT_TRUE(run_until([&] { return all_written(); }));
    stop(*a);
    expect_exactly_once();
}

TEST_F(PipelineLeaseTest, EventsArrivingAfterTheLeaseIsLostAreDroppedAndTheScopeStillStops) {
    // The reply in flight when the lease goes is delivered after the hard stop, with enough
    // events to fill a batch: it must be dropped (the next owner replays it), not queued for
    // a recorder that has already exited — the scope would never finish and never be retaken.
    auto a = one_scope_written(8);
    const std::string id = cfg_.scopes[0].id();
    const auto written = dest_.occurrences().size();
    log_.stalled = true;
    ASSERT_TRUE(run_until([&] { return log_.stalled_readers == 1; }));
    append_all(8);
    table_.steal(id);
    ASSERT_TRUE(run_until([&] { return a->held() == 0; }));
    run_for(50ms);  // the hard stop reaches the helpers; the reader still holds its reply
    log_.stalled = false;
    run_for(100ms);
    EXPECT_EQ(dest_.occurrences().size(), written) << "nothing is written without the lease";
    table_.vacate(id);
    ASSERT_TRUE(run_until([&] { return a->held() == 1; }, 3s))
        << "the scope that lost its lease never finished stopping";
    ASSERT_TRUE(run_until([&] { return all_written(); }));
    stop(*a);
    expect_exactly_once();
}

TEST_F(PipelineLeaseTest, ASourceThatIgnoresCancellationCannotHangTheStopForever) {
    // A source (an embedder's own, say) that never answers a cancellation: the graceful stop
    // times out, the hard stop gets one more shutdown_timeout (at least a second), then run()
    // returns with an error naming the scope instead of waiting forever.
    cfg_.shutdown_timeout = 200ms;
    scopes(2);
    auto a = make("a");
    ASSERT_TRUE(run_until([&] { return a->held() == 2; }));
    append_all(8);
    ASSERT_TRUE(run_until([&] { return all_written(); }));
    log_.stalled = true;
    ASSERT_TRUE(run_until([&] { return log_.stalled_readers == 2; }));
    const auto t0 = clock::now();
    a->stop.emit(asio::cancellation_type::terminal);
    ASSERT_TRUE(run_until([&] { return a->done; }, 3s));
    EXPECT_GE(clock::now() - t0, 1200ms) << "graceful period, then the hard stop's";
    EXPECT_EQ(a->result, errc::timeout);
    EXPECT_NE(a->diag.message.find("d.c0"), std::string::npos) << a->diag.message;
    EXPECT_NE(a->diag.message.find("did not stop"), std::string::npos) << a->diag.message;
    log_.stalled = false;  // let the abandoned readers end before the fixture goes
    run_for(50ms);
    expect_exactly_once();
}

TEST_F(PipelineLeaseTest, AZeroShutdownTimeoutStopsAtOnceAndTheNextStartWritesTheRest) {
    // shutdown_timeout 0: "do not drain". The hard stop follows at once and must finish
    // (not be given up on in the same instant); what was open is written by the next start.
    cfg_.shutdown_timeout = 0ms;
    cfg_.batch.max_age = 10s;  // the 3 events below stay in an open batch
    auto a = one_scope_written(8);
    append_all(3);
    run_for(50ms);
    stop(*a);
    EXPECT_LT(dest_.occurrences().size(), produced());
    auto b = make("b");
    ASSERT_TRUE(run_until([&] { return b->held() == 1; }));
    append_all(1);  // the 3 again and 1 more fill b's batch to 4 (max_events): sealed
    ASSERT_TRUE(run_until([&] { return all_written(); }));
    stop(*b);
    expect_exactly_once();
}

TEST_F(PipelineLeaseTest, AStoreOutageLongerThanTheTtlExpiresTheLeaseThenItIsRetaken) {
    scopes(2);
    cfg_.not_ready_after = 100ms;
    auto a = make("a");
    ASSERT_TRUE(run_until([&] { return a->held() == 2; }));
    append_all(10);
    ASSERT_TRUE(run_until([&] { return all_written(); }));
    {
        std::lock_guard lock(table_.mu);
        table_.down = true;
    }
    append_all(10);
    // No refresh confirmed for a TTL: the watchdog stops both scopes.
    ASSERT_TRUE(run_until([&] { return a->held() == 0; }, 2s));
    EXPECT_EQ(a->sample("penne_lease_losses_total{scope=\"d.c1\"}"), 1);
    // Holding no scope is not "standby" while the store cannot be reached: not ready.
    std::string reason;
    EXPECT_TRUE(run_until([&] {
        return !a->pipe->ready(reason) &&
               reason.find("lease requests failing") != std::string::npos;
    })) << reason;
    {
        std::lock_guard lock(table_.mu);
        table_.down = false;
    }
    ASSERT_TRUE(run_until([&] { return a->held() == 2; }));
    EXPECT_TRUE(run_until([&] { return a->pipe->ready(reason); })) << reason;
    ASSERT_TRUE(run_until([&] { return all_written(); }));
    stop(*a);
    EXPECT_FALSE(a->result);
    expect_exactly_once();
}

}  // namespace
}  // namespace penne::test
