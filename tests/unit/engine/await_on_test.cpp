// penne::detail::await_on and co_spawn_forwarding (engine/include/penne/detail/await_on.hpp):
// results and exceptions come back, the operation runs on the target executor and the caller
// resumes on its own, a cancellation from the awaiting side reaches the operation, and a
// cancellation racing the operation's completion (two strands, two threads, thousands of
// rounds) neither touches freed memory nor loses a result. The last one is the scenario that
// crashed Boost 1.81's co_spawn under ASan; run this test under the asan preset to check it.
#include <penne/detail/await_on.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>

namespace penne::detail {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using strand = asio::strand<asio::io_context::executor_type>;

// Fails the test with whatever a top-level coroutine threw.
auto rethrow = [](std::exception_ptr e) {
    if (e)
        std::rethrow_exception(e);
};

asio::awaitable<int> answer_after(strand target, int value, int suspensions) {
    for (int i = 0; i < suspensions; ++i)
        co_await asio::post(target, asio::use_awaitable);
    co_return value;
}

asio::awaitable<int> throw_after(strand target, int suspensions) {
    for (int i = 0; i < suspensions; ++i)
        co_await asio::post(target, asio::use_awaitable);
    throw std::runtime_error("op failed");
}

TEST(AwaitOn, ResultsAndExceptionsPropagate) {
    asio::io_context ctx;
    strand target = asio::make_strand(ctx);
    strand caller = asio::make_strand(ctx);
    int immediate = 0, suspended = 0;
    std::string thrown_at_once, thrown_later;
    bool finished = false;
    asio::co_spawn(
        caller,
        [&]() -> asio::awaitable<void> {
            auto a = answer_after(target, 41, 0);
            immediate = co_await await_on(target, std::move(a));
            auto b = answer_after(target, 42, 3);
            suspended = co_await await_on(target, std::move(b));
            try {
                auto c = throw_after(target, 0);
                co_await await_on(target, std::move(c));
            } catch (const std::runtime_error& e) {
                thrown_at_once = e.what();
            }
            try {
                auto d = throw_after(target, 2);
                co_await await_on(target, std::move(d));
            } catch (const std::runtime_error& e) {
                thrown_later = e.what();
            }
            finished = true;
        },
        rethrow);
    ctx.run();
    EXPECT_TRUE(finished);
    EXPECT_EQ(immediate, 41);
    EXPECT_EQ(suspended, 42);
    EXPECT_EQ(thrown_at_once, "op failed");
    EXPECT_EQ(thrown_later, "op failed");
}

TEST(AwaitOn, RunsOnTheTargetAndResumesOnTheCaller) {
    asio::io_context ctx;
    strand target = asio::make_strand(ctx);
    strand caller = asio::make_strand(ctx);
    // Only the positive facts are checked: a strand may run another strand's handlers nested
    // in its own (dispatch), so "not on the other strand" is not promised.
    std::atomic<int> op_on_target{0}, resumed_on_caller{0};
    auto op = [&]() -> asio::awaitable<int> {
        for (int i = 0; i < 3; ++i) {
            op_on_target += target.running_in_this_thread();
            asio::steady_timer t(target, 1ms);
            co_await t.async_wait(asio::use_awaitable);
        }
        co_return 7;
    };
    int result = 0;
    asio::co_spawn(
        caller,
        [&]() -> asio::awaitable<void> {
            for (int round = 0; round < 20; ++round) {
                auto o = op();
                result += co_await await_on(target, std::move(o));
                resumed_on_caller += caller.running_in_this_thread();
            }
        },
        rethrow);
    // Two threads, so "on the target" is a property of the strand and not of the only thread.
    std::thread second([&] { ctx.run(); });
    ctx.run();
    second.join();
    EXPECT_EQ(result, 20 * 7);
    EXPECT_EQ(op_on_target.load(), 60);
    EXPECT_EQ(resumed_on_caller.load(), 20);
}

TEST(AwaitOn, CancellationFromTheAwaitingSideReachesTheOp) {
    asio::io_context ctx;
    strand target = asio::make_strand(ctx);
    strand caller = asio::make_strand(ctx);
    bool waiting = false;
    bool op_on_target = false;
    boost::system::error_code op_ec, seen_ec;
    auto op = [&]() -> asio::awaitable<boost::system::error_code> {
        asio::steady_timer t(target, 30s);
        waiting = true;
        auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        op_on_target = target.running_in_this_thread();
        op_ec = ec;
        co_return ec;
    };
    asio::cancellation_signal cancel;
    bool completed = false;
    asio::co_spawn(
        caller,
        [&]() -> asio::awaitable<void> {
            auto o = op();
            seen_ec = co_await await_on(target, std::move(o));
        },
        asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) {
            completed = true;
            rethrow(e);
        }));
    while (!waiting)
        ctx.run_one();
    const auto start = std::chrono::steady_clock::now();
    cancel.emit(asio::cancellation_type::terminal);
    ctx.run_for(10s);
    EXPECT_TRUE(completed);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
    EXPECT_EQ(op_ec, asio::error::operation_aborted);
    EXPECT_EQ(seen_ec, asio::error::operation_aborted);
    EXPECT_TRUE(op_on_target);
}

TEST(CoSpawnForwarding, APlainHandlerCompletesOnTheTarget) {
    asio::io_context ctx;
    strand target = asio::make_strand(ctx);
    int got = 0;
    bool on_target = false;
    co_spawn_forwarding(target, answer_after(target, 5, 2), [&](std::exception_ptr e, int v) {
        rethrow(e);
        got = v;
        on_target = target.running_in_this_thread();
    });
    ctx.run();
    EXPECT_EQ(got, 5);
    EXPECT_TRUE(on_target);
}

// A handler with its own executor and a cancellation slot (what co_spawn in Boost 1.81 gets
// wrong): emits at every step, including between the op's completion and the handler's run,
// change nothing for an op that cannot be interrupted, and the result arrives once, on the
// handler's executor.
TEST(CoSpawnForwarding, EmitsAfterCompletionAreHarmless) {
    asio::io_context ctx;
    strand target = asio::make_strand(ctx);
    strand caller = asio::make_strand(ctx);
    asio::cancellation_signal cancel;
    int deliveries = 0, got = 0;
    bool on_caller = false;
    co_spawn_forwarding(
        target, answer_after(target, 9, 0),
        asio::bind_cancellation_slot(cancel.slot(),
                                     asio::bind_executor(caller, [&](std::exception_ptr e, int v) {
                                         rethrow(e);
                                         ++deliveries;
                                         got = v;
                                         on_caller = caller.running_in_this_thread();
                                     })));
    int steps = 0;
    while (deliveries == 0 && steps < 1000) {
        cancel.emit(asio::cancellation_type::terminal);
        ctx.run_one();
        ++steps;
    }
    cancel.emit(asio::cancellation_type::terminal);
    ctx.run();
    EXPECT_EQ(deliveries, 1);
    EXPECT_EQ(got, 9);
    EXPECT_TRUE(on_caller);
}

// ---- stress: cancellation racing completion -----------------------------------------------

struct race_stats {
    std::atomic<int> op_off_target{0};  // the op ran somewhere other than its strand
    std::atomic<int> resumed_off_caller{0};
    std::atomic<int> values{0};             // the op's value came back
    std::atomic<int> aborted{0};            // cancelled (in the op or before it started)
    std::atomic<int> lost_cancellation{0};  // a 30 s wait ran out instead of being cancelled
    std::atomic<int> wrong_value{0};
    std::atomic<int> completions{0};
};

// Kind of op by round: completes at once, after a few posts, after a short timer that races
// the cancellation, or only when cancelled.
asio::awaitable<int> racing_op(strand target, int round, race_stats& st) {
    auto check = [&] {
        if (!target.running_in_this_thread())
            ++st.op_off_target;
    };
    check();
    switch (round % 4) {
        case 0:
            break;
        case 1:
            for (int i = 0; i < 1 + round % 3; ++i) {
                co_await asio::post(target, asio::use_awaitable);
                check();
            }
            break;
        case 2: {
            asio::steady_timer t(target, std::chrono::microseconds(round % 50));
            auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
            check();
            if (ec)
                co_return -1;
            break;
        }
        default: {
            asio::steady_timer t(target, 30s);
            auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
            check();
            if (ec)
                co_return -1;
            ++st.lost_cancellation;
            break;
        }
    }
    co_return round;
}

asio::awaitable<void> racing_caller(strand target, strand caller, int round, race_stats& st) {
    int result = -2;
    try {
        auto op = racing_op(target, round, st);
        result = co_await await_on(target, std::move(op));
    } catch (const boost::system::system_error& e) {
        if (e.code() != asio::error::operation_aborted)
            throw;
    }
    if (!caller.running_in_this_thread())
        ++st.resumed_off_caller;
    if (result == round)
        ++st.values;
    else if (result < 0)
        ++st.aborted;
    else
        ++st.wrong_value;
}

// Each round spawns a caller on its strand, lets it (and the op on the other strand, on the
// other thread) run for a round-dependent number of steps, cancels it and waits for it.
asio::awaitable<void> race_driver(strand target, strand caller, int rounds, race_stats& st) {
    for (int round = 0; round < rounds; ++round) {
        asio::cancellation_signal cancel;
        bool done = false;
        asio::steady_timer wake(caller, asio::steady_timer::time_point::max());
        asio::co_spawn(caller, racing_caller(target, caller, round, st),
                       asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) {
                           rethrow(e);
                           ++st.completions;
                           done = true;
                           wake.cancel();
                       }));
        const int steps = (round / 4) % 6;
        for (int i = 0; i < steps; ++i)
            co_await asio::post(caller, asio::use_awaitable);
        cancel.emit(asio::cancellation_type::terminal);
        if (!done) {
            auto [ec] = co_await wake.async_wait(asio::as_tuple(asio::use_awaitable));
            (void)ec;
        }
    }
}

TEST(AwaitOn, CancellationRacingCompletionOnTwoThreads) {
    constexpr int rounds = 4000;
    asio::io_context ctx(2);
    strand target = asio::make_strand(ctx);
    strand caller = asio::make_strand(ctx);
    race_stats st;
    bool finished = false;
    asio::co_spawn(caller, race_driver(target, caller, rounds, st), [&](std::exception_ptr e) {
        rethrow(e);
        finished = true;
    });
    const auto start = std::chrono::steady_clock::now();
    std::thread second([&] { ctx.run(); });
    ctx.run();
    second.join();
    EXPECT_TRUE(finished);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 25s);
    EXPECT_EQ(st.completions.load(), rounds);
    EXPECT_EQ(st.values.load() + st.aborted.load(), rounds);
    EXPECT_EQ(st.wrong_value.load(), 0);
    EXPECT_EQ(st.op_off_target.load(), 0);
    EXPECT_EQ(st.resumed_off_caller.load(), 0);
    EXPECT_EQ(st.lost_cancellation.load(), 0);
    // Both outcomes happen, so the cancellation really raced the completions.
    EXPECT_GT(st.values.load(), rounds / 8);
    EXPECT_GT(st.aborted.load(), rounds / 8);
}

}  // namespace
}  // namespace penne::detail
