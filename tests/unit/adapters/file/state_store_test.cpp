#include <penne/file/error.hpp>
#include <penne/file/state_store.hpp>
#include <penne/memory_state_store.hpp>

#include "file_test_support.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <random>
#include <thread>

namespace penne::file {
namespace {

using namespace test;

manifest_entry entry(std::uint64_t seq, std::string key, std::uint64_t count = 1) {
    manifest_entry e;
    e.seq = seq;
    e.key = std::move(key);
    e.db = "shop";
    e.coll = "orders";
    e.first = token(static_cast<std::int64_t>(seq * 100));
    e.last = token(static_cast<std::int64_t>(seq * 100 + 99));
    e.count = count;
    return e;
}

std::vector<std::string> keys_of(const scope_state& s) {
    std::vector<std::string> out;
    for (auto& e : s.entries)
        out.push_back(e.key);
    return out;
}

class FileStateStore : public ::testing::Test {
protected:
    scratch_dir tmp;
    fs::path dir = tmp / "state";

    scope_state load(state_store& store, const std::string& scope) {
        scope_state out;
        diagnostics diag;
        auto ec = run(store.load(scope, out, diag));
        EXPECT_FALSE(ec) << ec.message() << ": " << diag.message;
        return out;
    }
    void record(state_store& store, const std::string& scope, const manifest_entry& e) {
        diagnostics diag;
        auto ec = run(store.record(scope, e, diag));
        ASSERT_FALSE(ec) << ec.message() << ": " << diag.message;
    }
    void commit(state_store& store, const std::string& scope, const commit_request& req) {
        diagnostics diag;
        auto ec = run(store.commit(scope, req, diag));
        ASSERT_FALSE(ec) << ec.message() << ": " << diag.message;
    }
};

TEST_F(FileStateStore, UnknownScopeLoadsEmptyAndWritesNothing) {
    state_store store(dir);
    auto s = load(store, "shop.orders");
    EXPECT_FALSE(s.watermark);
    EXPECT_TRUE(s.entries.empty());
    EXPECT_TRUE(fs::is_directory(dir));
    EXPECT_FALSE(fs::exists(dir / state_store::file_name("shop.orders")));
    EXPECT_EQ(store.describe(), "file:" + dir.string());
}

TEST_F(FileStateStore, RecordRoundTripsEveryField) {
    auto e = entry(7, "shop/orders/2026/01/02/03/abc.jsonl.zst", 42);
    e.durable = true;
    e.first = resume_token();  // an empty token survives as empty
    e.db = "shöp";
    e.coll = "orders \"quoted\" \\ \n";
    {
        state_store store(dir);
        record(store, "shop", e);
        auto s = load(store, "shop");
        ASSERT_EQ(s.entries.size(), 1u);
        EXPECT_EQ(s.entries[0], e);
    }
    state_store fresh(dir);
    auto s = load(fresh, "shop");
    ASSERT_EQ(s.entries.size(), 1u);
    EXPECT_EQ(s.entries[0], e);
    EXPECT_FALSE(s.watermark);
}

TEST_F(FileStateStore, EntriesComeBackInSeqOrder) {
    state_store store(dir);
    record(store, "s", entry(3, "c"));
    record(store, "s", entry(1, "a"));
    record(store, "s", entry(2, "b"));
    EXPECT_EQ(keys_of(load(store, "s")), (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(FileStateStore, RecordWithSameKeyReplaces) {
    {
        state_store store(dir);
        record(store, "s", entry(1, "a", 10));
        record(store, "s", entry(2, "b", 20));
        record(store, "s", entry(1, "a", 11));  // replay of the same batch
        record(store, "s", entry(3, "b", 30));  // same key, later seq: moves to the end
        auto s = load(store, "s");
        ASSERT_EQ(keys_of(s), (std::vector<std::string>{"a", "b"}));
        EXPECT_EQ(s.entries[0].count, 11u);
        EXPECT_EQ(s.entries[1].count, 30u);
        EXPECT_EQ(s.entries[1].seq, 3u);
    }
    state_store fresh(dir);
    auto s = load(fresh, "s");
    ASSERT_EQ(keys_of(s), (std::vector<std::string>{"a", "b"}));
    EXPECT_EQ(s.entries[0].count, 11u);
}

TEST_F(FileStateStore, CommitMarksDurableMovesWatermarkAndRetiresTogether) {
    {
        state_store store(dir);
        record(store, "s", entry(1, "a"));
        record(store, "s", entry(2, "b"));
        record(store, "s", entry(3, "c"));
        commit(store, "s",
               {.durable_keys = {"a", "c"}, .watermark = token(199), .retire_keys = {"a"}});
        auto s = load(store, "s");
        ASSERT_EQ(keys_of(s), (std::vector<std::string>{"b", "c"}));
        EXPECT_FALSE(s.entries[0].durable);
        EXPECT_TRUE(s.entries[1].durable);
        EXPECT_EQ(s.watermark, token(199));
    }
    // All three effects are in the one file the commit wrote.
    state_store fresh(dir);
    auto s = load(fresh, "s");
    ASSERT_EQ(keys_of(s), (std::vector<std::string>{"b", "c"}));
    EXPECT_FALSE(s.entries[0].durable);
    EXPECT_TRUE(s.entries[1].durable);
    EXPECT_EQ(s.watermark, token(199));
}

TEST_F(FileStateStore, CommitWithoutWatermarkKeepsItAndIgnoresUnknownKeys) {
    state_store store(dir);
    record(store, "s", entry(1, "a"));
    commit(store, "s", {.durable_keys = {}, .watermark = token(5), .retire_keys = {}});
    commit(store, "s", {.durable_keys = {"zzz"}, .watermark = {}, .retire_keys = {"yyy"}});
    auto s = load(store, "s");
    EXPECT_EQ(s.watermark, token(5));
    ASSERT_EQ(keys_of(s), (std::vector<std::string>{"a"}));
    EXPECT_FALSE(s.entries[0].durable);
}

TEST_F(FileStateStore, ScopesAreIndependent) {
    state_store store(dir);
    record(store, "db.a", entry(1, "x"));
    commit(store, "db.b", {.durable_keys = {}, .watermark = token(9), .retire_keys = {}});
    auto a = load(store, "db.a");
    auto b = load(store, "db.b");
    EXPECT_EQ(keys_of(a), (std::vector<std::string>{"x"}));
    EXPECT_FALSE(a.watermark);
    EXPECT_TRUE(b.entries.empty());
    EXPECT_EQ(b.watermark, token(9));
}

TEST_F(FileStateStore, FileCarriesFormatVersionAndScope) {
    state_store store(dir);
    record(store, "shop.orders", entry(1, "k"));
    auto text = read_all(dir / state_store::file_name("shop.orders"));
    EXPECT_NE(text.find("\"version\":1"), std::string::npos) << text;
    EXPECT_NE(text.find("\"scope\":\"shop.orders\""), std::string::npos) << text;
    EXPECT_NE(text.find("\"format\":\"penne.scope_state\""), std::string::npos) << text;
}

TEST(FileStateStoreNames, AreSafeAndDistinct) {
    std::vector<std::string> ids = {"shop.orders",
                                    "shop/orders",
                                    "..",
                                    "../../etc/passwd",
                                    ".",
                                    "",
                                    "*",
                                    "with space",
                                    "ünïcødé.日本",
                                    "Orders",
                                    "orders",
                                    "a%2f",
                                    "a/",
                                    "~",
                                    "a\\b",
                                    std::string(1, '\0'),
                                    std::string(600, 'x'),
                                    std::string(600, 'x') + "y",
                                    std::string(300, '/')};
    std::set<std::string> folded;
    for (auto& id : ids) {
        auto name = state_store::file_name(id);
        EXPECT_EQ(name.find('/'), std::string::npos) << name;
        EXPECT_EQ(name.find('\0'), std::string::npos);
        EXPECT_NE(name, ".");
        EXPECT_NE(name, "..");
        EXPECT_FALSE(name.starts_with('.')) << name;
        EXPECT_LE(name.size(), 255u) << name;
        std::string lower = name;
        for (auto& c : lower)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        // Distinct even on a case-insensitive file system.
        EXPECT_TRUE(folded.insert(lower).second) << "collision for '" << id << "': " << name;
    }
    EXPECT_EQ(state_store::file_name("shop.orders"), "scope-shop.orders.json");
}

TEST_F(FileStateStore, AwkwardScopeIdsRoundTripAndStayInsideTheDirectory) {
    std::vector<std::string> ids = {
        "db/coll",      "..", "../escape",           "/abs/olute", "ünï 日本.cöll",
        "with  spaces", "*",  std::string(400, 'q'), "Case",       "case"};
    {
        state_store store(dir);
        std::uint64_t seq = 1;
        for (auto& id : ids)
            record(store, id, entry(seq++, "key-for-" + id));
    }
    // Nothing was created outside the state directory.
    EXPECT_EQ(tree(tmp.path()).size(), tree(dir).size() + 1);
    std::set<std::string> expected = {".penne-state.lock"};
    for (auto& id : ids)
        expected.insert(state_store::file_name(id));
    EXPECT_EQ(tree(dir), expected);

    state_store fresh(dir);
    std::uint64_t seq = 1;
    for (auto& id : ids) {
        auto s = load(fresh, id);
        ASSERT_EQ(s.entries.size(), 1u) << id;
        EXPECT_EQ(s.entries[0], entry(seq++, "key-for-" + id)) << id;
    }
}

TEST_F(FileStateStore, CreatesMissingNestedDirectory) {
    auto nested = tmp / "a" / "b" / "c";
    state_store store(nested);
    record(store, "s", entry(1, "k"));
    EXPECT_TRUE(fs::exists(nested / state_store::file_name("s")));
}

TEST_F(FileStateStore, StaleTempFilesAreRemovedAndIgnored) {
    fs::create_directories(dir);
    auto stale = dir / ".scope-s.json.penne-tmp-1234-0";
    write_all(stale, "{\"torn");
    state_store store(dir);
    diagnostics diag;
    ASSERT_FALSE(store.open(diag)) << diag.message;
    EXPECT_FALSE(fs::exists(stale));
    EXPECT_TRUE(load(store, "s").entries.empty());
}

TEST_F(FileStateStore, SecondInstanceOnSameDirectoryIsRefused) {
    state_store first(dir);
    record(first, "s", entry(1, "k"));
    state_store second(dir);
    scope_state out;
    diagnostics diag;
    auto ec = run(second.load("s", out, diag));
    EXPECT_EQ(ec, errc::state_dir_in_use);
    EXPECT_TRUE(is_fatal(ec));
    EXPECT_NE(diag.message.find(dir.string()), std::string::npos) << diag.message;
    EXPECT_NE(diag.message.find("pid " + std::to_string(::getpid())), std::string::npos)
        << diag.message;
}

TEST_F(FileStateStore, CancelledBeforeStartHasNoEffect) {
    state_store store(dir);
    diagnostics diag;
    auto ec = run(store.record("s", entry(1, "k"), diag), /*cancelled=*/true);
    EXPECT_EQ(ec, penne::errc::cancelled);
    EXPECT_TRUE(load(store, "s").entries.empty());
}

struct corruption {
    const char* name;
    std::string content;
    const char* expect_in_message;
};

class CorruptStateFile : public FileStateStore, public ::testing::WithParamInterface<corruption> {};

TEST_P(CorruptStateFile, IsReportedNeverTreatedAsEmpty) {
    fs::create_directories(dir);
    auto path = dir / state_store::file_name("s");
    write_all(path, GetParam().content);
    state_store store(dir);
    scope_state out;
    out.watermark = token(1);  // must not be replaced by an empty state
    diagnostics diag;
    auto ec = run(store.load("s", out, diag));
    EXPECT_EQ(ec, penne::errc::state_corrupt);
    EXPECT_TRUE(is_fatal(ec));
    EXPECT_EQ(out.watermark, token(1));
    EXPECT_NE(diag.message.find(path.string()), std::string::npos) << diag.message;
    EXPECT_NE(diag.message.find("move it aside"), std::string::npos) << diag.message;
    EXPECT_NE(diag.message.find(GetParam().expect_in_message), std::string::npos) << diag.message;
    // A write must not paper over the corrupt file either.
    ec = run(store.record("s", entry(1, "k"), diag));
    EXPECT_EQ(ec, penne::errc::state_corrupt);
    EXPECT_EQ(read_all(path), GetParam().content);
}

const std::string good_prefix = R"({"format":"penne.scope_state","version":1,"scope":"s",)";

INSTANTIATE_TEST_SUITE_P(
    Cases, CorruptStateFile,
    ::testing::Values(
        corruption{"garbage", "\x01\x02 not json", "not valid JSON"},
        corruption{"empty", "", "not valid JSON"},
        corruption{"truncated", good_prefix + R"("watermark":nul)", "not valid JSON"},
        corruption{"array", "[]", "not a JSON object"},
        corruption{"wrong_format",
                   R"({"format":"other","version":1,"scope":"s","watermark":null,"entries":[]})",
                   "'format'"},
        corruption{"newer_version", R"({"format":"penne.scope_state","version":2,"scope":"s"})",
                   "format version 2"},
        corruption{"no_version", R"({"format":"penne.scope_state","scope":"s"})", "'version'"},
        corruption{"other_scope",
                   R"({"format":"penne.scope_state","version":1,"scope":"t","watermark":null,)"
                   R"("entries":[]})",
                   "belongs to scope 't'"},
        corruption{"bad_watermark", good_prefix + R"("watermark":"zz","entries":[]})",
                   "'watermark'"},
        corruption{"missing_entries", good_prefix + R"("watermark":null})", "'entries'"},
        corruption{"bad_entry",
                   good_prefix + R"("watermark":null,"entries":[{"seq":-1,"key":"k"}]})", "'seq'"},
        corruption{
            "unsorted",
            good_prefix +
                R"("watermark":null,"entries":[)"
                R"({"seq":2,"key":"a","db":"d","coll":"c","first":"","last":"","count":1,"durable":false},)"
                R"({"seq":1,"key":"b","db":"d","coll":"c","first":"","last":"","count":1,"durable":false}]})",
            "seq order"},
        corruption{
            "duplicate_key",
            good_prefix +
                R"("watermark":null,"entries":[)"
                R"({"seq":1,"key":"a","db":"d","coll":"c","first":"","last":"","count":1,"durable":false},)"
                R"({"seq":2,"key":"a","db":"d","coll":"c","first":"","last":"","count":1,"durable":false}]})",
            "appears twice"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(FileStateStore, PermissionProblemIsIoErrorWithPathAndReason) {
    recording_syscalls sys;
    sys.fail_open_dir = EACCES;
    state_store store(dir, sys);
    scope_state out;
    diagnostics diag;
    auto ec = run(store.load("s", out, diag));
    EXPECT_EQ(ec, penne::errc::io_error);
    EXPECT_NE(diag.message.find(dir.string()), std::string::npos) << diag.message;
    EXPECT_NE(diag.message.find("Permission denied"), std::string::npos) << diag.message;
}

TEST_F(FileStateStore, FailedWriteKeepsOldStateLeavesNoTempAndCanBeRetried) {
    recording_syscalls sys;
    state_store store(dir, sys);
    record(store, "s", entry(1, "a"));
    for (int* fault : {&sys.fail_write, &sys.fail_file_fsync, &sys.fail_rename}) {
        *fault = ENOSPC;
        diagnostics diag;
        auto ec = run(store.record("s", entry(2, "b"), diag));
        EXPECT_EQ(ec, penne::errc::io_error);
        EXPECT_TRUE(is_retryable(ec));
        EXPECT_NE(diag.message.find("No space left on device"), std::string::npos) << diag.message;
        EXPECT_FALSE(has_temp_files(dir));
        EXPECT_EQ(keys_of(load(store, "s")), (std::vector<std::string>{"a"}));
        *fault = 0;
    }
    record(store, "s", entry(2, "b"));
    EXPECT_EQ(keys_of(load(store, "s")), (std::vector<std::string>{"a", "b"}));
}

TEST_F(FileStateStore, FailedDirectoryFsyncRereadsTheDiskBeforeTheNextWrite) {
    recording_syscalls sys;
    state_store store(dir, sys);
    record(store, "s", entry(1, "a"));
    sys.fail_dir_fsync = EIO;
    diagnostics diag;
    EXPECT_EQ(run(store.record("s", entry(2, "b"), diag)), penne::errc::io_error);
    sys.fail_dir_fsync = 0;
    // The rename happened; whatever is on disk is what the store now reports.
    EXPECT_EQ(keys_of(load(store, "s")), (std::vector<std::string>{"a", "b"}));
    // Retrying the record is harmless.
    record(store, "s", entry(2, "b"));
    EXPECT_EQ(keys_of(load(store, "s")), (std::vector<std::string>{"a", "b"}));
}

TEST_F(FileStateStore, EveryWriteFsyncsFileBeforeRenameAndDirectoryAfter) {
    recording_syscalls sys;
    state_store store(dir, sys);
    diagnostics diag;
    ASSERT_FALSE(store.open(diag));
    sys.clear();
    record(store, "s", entry(1, "a"));
    commit(store, "s", {.durable_keys = {"a"}, .watermark = token(1), .retire_keys = {"a"}});
    const std::string name = state_store::file_name("s");
    auto calls = sys.calls();
    std::vector<std::string> shape;
    for (auto& c : calls)
        shape.push_back(c.starts_with("create ") ? "create" : c);
    std::vector<std::string> one = {"create", "write", "fsync file", "rename -> " + name,
                                    "fsync dir"};
    std::vector<std::string> expected = one;
    expected.insert(expected.end(), one.begin(), one.end());
    EXPECT_EQ(shape, expected);
}

TEST_F(FileStateStore, KeepsAnInMemoryCopyInsteadOfRereading) {
    recording_syscalls sys;
    state_store store(dir, sys);
    record(store, "s", entry(1, "a"));
    // Replace the file behind the store's back: a cached scope does not read it again.
    write_all(dir / state_store::file_name("s"), "garbage");
    EXPECT_EQ(keys_of(load(store, "s")), (std::vector<std::string>{"a"}));
}

TEST_F(FileStateStore, ConcurrentScopesOnAThreadPool) {
    constexpr int scopes = 16, batches = 12;
    {
        state_store store(dir);
        asio::thread_pool pool(4);
        std::vector<std::future<error_code>> done;
        for (int s = 0; s < scopes; ++s) {
            auto strand = asio::make_strand(pool);
            done.push_back(asio::co_spawn(
                strand,
                [&store, s]() -> asio::awaitable<error_code> {
                    std::string scope = "db.c" + std::to_string(s);
                    diagnostics diag;
                    for (int b = 1; b <= batches; ++b) {
                        auto e = entry(static_cast<std::uint64_t>(b), "k" + std::to_string(b));
                        error_code ec = co_await store.record(scope, e, diag);
                        if (ec)
                            co_return ec;
                        commit_request req{.durable_keys = {e.key},
                                           .watermark = token(b),
                                           .retire_keys = {"k" + std::to_string(b - 1)}};
                        ec = co_await store.commit(scope, req, diag);
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
    }
    state_store fresh(dir);
    for (int s = 0; s < scopes; ++s) {
        auto st = load(fresh, "db.c" + std::to_string(s));
        EXPECT_EQ(st.watermark, token(batches));
        ASSERT_EQ(keys_of(st), (std::vector<std::string>{"k" + std::to_string(batches)}));
        EXPECT_TRUE(st.entries[0].durable);
    }
}

// The crash test's writer performs operation n (1, 2, ...): odd n records batch k, even n
// commits it (durable, watermark) and retires batch k-1. expected_state(n) is the state
// after the first n operations.
void apply_op(scope_state& s, std::uint64_t n) {
    std::uint64_t k = (n + 1) / 2;
    if (n % 2 == 1) {
        apply_record(s, entry(k, "obj-" + std::to_string(k), k));
    } else {
        apply_commit(s, {.durable_keys = {"obj-" + std::to_string(k)},
                         .watermark = token(static_cast<std::int64_t>(k * 100 + 99)),
                         .retire_keys = {"obj-" + std::to_string(k - 1)}});
    }
}

scope_state expected_state(std::uint64_t n) {
    scope_state s;
    for (std::uint64_t i = 1; i <= n; ++i)
        apply_op(s, i);
    return s;
}

bool same(const scope_state& a, const scope_state& b) {
    return a.watermark == b.watermark && a.entries == b.entries;
}

struct shared_progress {
    std::atomic<std::uint64_t> completed{0};
    std::atomic<int> child_error{0};
};

[[noreturn]] void crash_writer(const fs::path& dir, shared_progress* progress) {
    state_store store(dir);
    asio::io_context ctx;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            diagnostics diag;
            for (std::uint64_t n = 1;; ++n) {
                std::uint64_t k = (n + 1) / 2;
                error_code ec;
                if (n % 2 == 1) {
                    ec = co_await store.record("crash.scope",
                                               entry(k, "obj-" + std::to_string(k), k), diag);
                } else {
                    commit_request req{.durable_keys = {"obj-" + std::to_string(k)},
                                       .watermark = token(static_cast<std::int64_t>(k * 100 + 99)),
                                       .retire_keys = {"obj-" + std::to_string(k - 1)}};
                    ec = co_await store.commit("crash.scope", req, diag);
                }
                if (ec) {
                    progress->child_error = 1;
                    ::_exit(1);
                }
                progress->completed.store(n);
            }
        },
        asio::detached);
    ctx.run();
    ::_exit(2);
}

TEST_F(FileStateStore, SurvivesSigkillAtRandomMoments) {
    void* mem = ::mmap(nullptr, sizeof(shared_progress), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
    auto* progress = new (mem) shared_progress;
    std::mt19937 rng(20260122);
    // Kill after a random number of acknowledged writes plus a random fraction of the
    // next one, so that the kill lands in every phase of a write, however slow the disk.
    std::uniform_int_distribution<int> writes_before(0, 6);
    std::uniform_int_distribution<int> delay_us(0, 3000);
    int in_flight_landed = 0, max_completed = 0;
    for (int round = 0; round < 50; ++round) {
        auto round_dir = dir / std::to_string(round);
        progress->completed = 0;
        progress->child_error = 0;
        const auto wanted = static_cast<std::uint64_t>(writes_before(rng));
        const auto delay = std::chrono::microseconds(delay_us(rng));
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0)
            crash_writer(round_dir, progress);
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (progress->completed.load() < wanted && progress->child_error.load() == 0 &&
               std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
        std::this_thread::sleep_for(delay);
        ::kill(pid, SIGKILL);
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        ASSERT_EQ(progress->child_error.load(), 0) << "the writer failed in round " << round;
        std::uint64_t n = progress->completed.load();
        max_completed = std::max(max_completed, static_cast<int>(n));

        state_store fresh(round_dir);
        auto s = load(fresh, "crash.scope");
        // Every acknowledged write is there; the one in flight is all there or not at all.
        bool old_state = same(s, expected_state(n));
        bool new_state = same(s, expected_state(n + 1));
        EXPECT_TRUE(old_state || new_state)
            << "round " << round << ": after " << n << " acknowledged writes the file holds "
            << s.entries.size() << " entries";
        if (new_state && !old_state)
            ++in_flight_landed;
        EXPECT_FALSE(has_temp_files(round_dir)) << round;
    }
    ::munmap(mem, sizeof(shared_progress));
    // The test only means something if the kills landed while writes were happening.
    EXPECT_GE(max_completed, 6);
    std::cout << "[ info ] max acknowledged writes " << max_completed
              << ", in-flight write landed in " << in_flight_landed << " of 50 rounds\n";
}

}  // namespace
}  // namespace penne::file
