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
#include <functional>
#include <iostream>
#include <map>
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

    scope_state load(penne::state_store& store, const std::string& scope) {
        scope_state out;
        diagnostics diag;
        auto ec = run(store.load(scope, out, diag));
        EXPECT_FALSE(ec) << ec.message() << ": " << diag.message;
        return out;
    }
    void record(penne::state_store& store, const std::string& scope, const manifest_entry& e) {
        diagnostics diag;
        auto ec = run(store.record(scope, e, diag));
        ASSERT_FALSE(ec) << ec.message() << ": " << diag.message;
    }
    void commit(penne::state_store& store, const std::string& scope, const commit_request& req) {
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
    EXPECT_FALSE(fs::exists(dir / state_store::journal_name("shop.orders")));
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

TEST_F(FileStateStore, JournalCarriesFormatVersionAndScope) {
    state_store store(dir);
    record(store, "shop.orders", entry(1, "k"));
    EXPECT_FALSE(fs::exists(dir / state_store::file_name("shop.orders")));
    auto bytes = read_all(dir / state_store::journal_name("shop.orders"));
    ASSERT_GE(bytes.size(), 16u);
    EXPECT_EQ(bytes.substr(0, 8), std::string("PNJRNL\r\n"));
    EXPECT_EQ(bytes.substr(8, 4), std::string("\x01\0\0\0", 4));  // version 1
    EXPECT_NE(bytes.find("shop.orders"), std::string::npos);
    EXPECT_EQ(fs::status(dir / state_store::journal_name("shop.orders")).permissions() &
                  fs::perms::others_write,
              fs::perms::none);
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
    EXPECT_EQ(state_store::journal_name("shop.orders"), "scope-shop.orders.journal");
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
        expected.insert(state_store::journal_name(id));
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
    EXPECT_TRUE(fs::exists(nested / state_store::journal_name("s")));
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
    for (int* fault : {&sys.fail_write, &sys.fail_file_fsync}) {
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
    // The failed appends left nothing in the journal: a fresh store reads the same.
    state_store fresh(tmp / "copy");
    fs::create_directories(tmp / "copy");
    fs::copy_file(dir / state_store::journal_name("s"),
                  tmp / "copy" / state_store::journal_name("s"));
    EXPECT_EQ(keys_of(load(fresh, "s")), (std::vector<std::string>{"a", "b"}));
}

TEST_F(FileStateStore, FailedJournalCreationKeepsNothingAndCanBeRetried) {
    recording_syscalls sys;
    state_store store(dir, sys);
    diagnostics opened;
    ASSERT_FALSE(store.open(opened)) << opened.message;
    for (int* fault : {&sys.fail_create, &sys.fail_write, &sys.fail_file_fsync, &sys.fail_rename}) {
        *fault = ENOSPC;
        diagnostics diag;
        auto ec = run(store.record("s", entry(1, "a"), diag));
        EXPECT_EQ(ec, penne::errc::io_error);
        EXPECT_NE(diag.message.find("No space left on device"), std::string::npos) << diag.message;
        EXPECT_FALSE(has_temp_files(dir));
        EXPECT_FALSE(fs::exists(dir / state_store::journal_name("s")));
        EXPECT_TRUE(load(store, "s").entries.empty());
        *fault = 0;
    }
    record(store, "s", entry(1, "a"));
    EXPECT_EQ(keys_of(load(store, "s")), (std::vector<std::string>{"a"}));
}

TEST_F(FileStateStore, FailedDirectoryFsyncRereadsTheDiskBeforeTheNextWrite) {
    recording_syscalls sys;
    state_store store(dir, sys);
    diagnostics diag;
    ASSERT_FALSE(store.open(diag)) << diag.message;
    // The journal is created with a rename, then the directory is fsynced.
    sys.fail_dir_fsync = EIO;
    EXPECT_EQ(run(store.record("s", entry(1, "a"), diag)), penne::errc::io_error);
    sys.fail_dir_fsync = 0;
    // The rename happened; whatever is on disk is what the store now reports.
    EXPECT_EQ(keys_of(load(store, "s")), (std::vector<std::string>{"a"}));
    // Retrying the record is harmless, and appends go on from there.
    record(store, "s", entry(1, "a"));
    record(store, "s", entry(2, "b"));
    EXPECT_EQ(keys_of(load(store, "s")), (std::vector<std::string>{"a", "b"}));
    state_store fresh(tmp / "copy");
    fs::create_directories(tmp / "copy");
    fs::copy_file(dir / state_store::journal_name("s"),
                  tmp / "copy" / state_store::journal_name("s"));
    EXPECT_EQ(keys_of(load(fresh, "s")), (std::vector<std::string>{"a", "b"}));
}

TEST_F(FileStateStore, JournalIsCreatedAtomicallyThenAppendedWithOneFdatasyncEach) {
    recording_syscalls sys;
    state_store store(dir, sys);
    diagnostics diag;
    ASSERT_FALSE(store.open(diag));
    sys.clear();
    record(store, "s", entry(1, "a"));
    const std::string name = state_store::journal_name("s");
    auto shape = [&] {
        std::vector<std::string> out;
        for (auto& c : sys.calls())
            out.push_back(c.starts_with("create ") ? "create" : c);
        return out;
    };
    // A new scope's journal is written whole and renamed into place, so it always holds
    // its first frame.
    EXPECT_EQ(shape(), (std::vector<std::string>{"create", "write", "fsync file",
                                                 "rename -> " + name, "fsync dir"}));
    sys.clear();
    record(store, "s", entry(2, "b"));
    commit(store, "s", {.durable_keys = {"a"}, .watermark = token(1), .retire_keys = {"a"}});
    EXPECT_EQ(shape(), (std::vector<std::string>{"write", "fdatasync", "write", "fdatasync"}));
}

TEST_F(FileStateStore, KeepsAnInMemoryCopyInsteadOfRereading) {
    recording_syscalls sys;
    state_store store(dir, sys);
    record(store, "s", entry(1, "a"));
    // Replace the file behind the store's back: a cached scope does not read it again.
    write_all(dir / state_store::journal_name("s"), "garbage");
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

[[noreturn]] void crash_writer(const fs::path& dir, shared_progress* progress,
                               journal_options opts = {}) {
    state_store store(dir, opts);
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

// ---- the journal ----------------------------------------------------------------------

std::uintmax_t journal_size(const fs::path& d, const std::string& scope) {
    return fs::file_size(d / state_store::journal_name(scope));
}

// Runs the given operations of one scope concurrently on one io_context, so that they
// overlap the way the contract allows (record() calls and a commit() on one strand).
std::vector<error_code> run_overlapping(
    std::vector<std::function<asio::awaitable<error_code>(diagnostics&)>> ops) {
    asio::io_context ctx;
    std::vector<error_code> results(ops.size(), make_error_code(penne::errc::io_error));
    for (std::size_t i = 0; i < ops.size(); ++i) {
        asio::co_spawn(
            ctx,
            [&results, &ops, i]() -> asio::awaitable<void> {
                diagnostics diag;
                error_code ec = co_await ops[i](diag);
                results[i] = ec;
            },
            asio::detached);
    }
    ctx.run();
    return results;
}

// What the engine does, at random: records of new batches (and replays of recorded ones,
// sometimes with a new seq), and commits that mark entries durable, move the watermark and
// retire entries, with unknown keys mixed in. Applied to a file store and to the reference
// model, penne::memory_state_store, which must always agree.
class random_workload {
public:
    explicit random_workload(std::uint64_t seed) : rng_(seed) {}

    // One operation on both stores; returns false when the file store failed.
    bool step(state_store& store, memory_state_store& model, const std::string& scope) {
        diagnostics diag;
        error_code ec, mec;
        if (pick(100) < 60) {
            manifest_entry e;
            if (!keys_.empty() && pick(100) < 15) {
                e.key = keys_[pick(keys_.size())];  // a replay of a recorded batch
                e.seq = pick(4) == 0 ? next_seq_++ : seq_of_[e.key];
            } else {
                e.key = "obj/" + std::to_string(next_key_++) + std::string(pick(40), 'k');
                e.seq = next_seq_++;
                keys_.push_back(e.key);
            }
            seq_of_[e.key] = e.seq;
            e.db = pick(2) ? "shop" : "d\xc3\xb6" + std::string(1, '\0') + "x";
            e.coll = "c" + std::to_string(pick(50));
            e.first = pick(8) == 0 ? resume_token() : token(static_cast<std::int64_t>(rng_()));
            e.last = token(static_cast<std::int64_t>(rng_()));
            e.count = rng_() % 100000;
            e.durable = pick(10) == 0;
            ec = run(store.record(scope, e, diag));
            mec = run(model.record(scope, e, diag));
        } else {
            commit_request req;
            for (std::size_t n = pick(6); n > 0; --n)
                req.durable_keys.push_back(some_key());
            if (pick(2))
                req.watermark = token(static_cast<std::int64_t>(rng_()));
            for (std::size_t n = pick(6); n > 0; --n)
                req.retire_keys.push_back(some_key());
            ec = run(store.commit(scope, req, diag));
            mec = run(model.commit(scope, req, diag));
        }
        EXPECT_FALSE(ec) << ec.message() << ": " << diag.message;
        EXPECT_FALSE(mec);
        return !ec;
    }

private:
    std::size_t pick(std::size_t n) { return static_cast<std::size_t>(rng_() % n); }
    std::string some_key() {
        if (keys_.empty() || pick(8) == 0)
            return "unknown-" + std::to_string(pick(1000));
        return keys_[pick(keys_.size())];
    }

    std::mt19937_64 rng_;
    std::vector<std::string> keys_;
    std::map<std::string, std::uint64_t> seq_of_;
    std::uint64_t next_seq_ = 1, next_key_ = 0;
};

void expect_same(const scope_state& got, const scope_state& want, const std::string& where) {
    EXPECT_EQ(got.watermark, want.watermark) << where;
    ASSERT_EQ(keys_of(got), keys_of(want)) << where;
    EXPECT_TRUE(got.entries == want.entries) << where;
}

TEST_F(FileStateStore, ReplayAfterRandomRecordsAndCommitsEqualsTheMemoryModel) {
    // With the default options (no compaction at this size) and with compaction at every
    // opportunity, so that replay starts from a snapshot too.
    for (auto opts :
         {journal_options{}, journal_options{.compact_ratio = 2, .compact_min_bytes = 2048}}) {
        const auto d = tmp / ("ratio" + std::to_string(opts.compact_ratio));
        memory_state_store model;
        random_workload work(0x5eed0000u + opts.compact_ratio);
        recording_syscalls sys;
        auto store = std::make_unique<state_store>(d, opts, sys);
        for (int i = 1; i <= 500; ++i) {
            ASSERT_TRUE(work.step(*store, model, "db.scope")) << "operation " << i;
            if (i % 50 == 0) {
                expect_same(load(*store, "db.scope"), model.snapshot("db.scope"),
                            "cached, after " + std::to_string(i));
            }
            if (i % 125 == 0) {
                // A restart: everything comes back from the journal alone.
                store.reset();
                store = std::make_unique<state_store>(d, opts, sys);
                expect_same(load(*store, "db.scope"), model.snapshot("db.scope"),
                            "replayed, after " + std::to_string(i));
            }
        }
        // The creation, and with the small threshold several compactions.
        const auto renames = sys.count("rename -> " + state_store::journal_name("db.scope"));
        if (opts.compact_min_bytes == 2048) {
            EXPECT_GE(renames, 3u);
        } else {
            EXPECT_EQ(renames, 1u);
        }
    }
}

TEST_F(FileStateStore, TornTailAtEveryByteOfTheLastFrameGivesTheStateBeforeIt) {
    memory_state_store model;
    scope_state before;
    std::string bytes;
    std::uintmax_t size_before = 0;
    {
        state_store store(dir);
        random_workload work(77);
        for (int i = 0; i < 12; ++i)
            ASSERT_TRUE(work.step(store, model, "s"));
        before = model.snapshot("s");
        size_before = journal_size(dir, "s");
        ASSERT_TRUE(work.step(store, model, "s"));
        bytes = read_all(dir / state_store::journal_name("s"));
    }
    ASSERT_GT(bytes.size(), size_before);
    const auto name = state_store::journal_name("s");
    for (std::size_t cut = size_before; cut < bytes.size(); ++cut) {
        const auto d = tmp / ("cut" + std::to_string(cut));
        fs::create_directories(d);
        write_all(d / name, bytes.substr(0, cut));
        {
            state_store store(d);
            expect_same(load(store, "s"), before, "cut at " + std::to_string(cut));
            // The torn bytes are cut off before the next append, which then survives.
            record(store, "s", entry(999, "after-the-crash"));
        }
        state_store fresh(d);
        auto s = load(fresh, "s");
        ASSERT_FALSE(s.entries.empty());
        EXPECT_EQ(s.entries.back().key, "after-the-crash") << "cut at " << cut;
        EXPECT_EQ(s.entries.size(), before.entries.size() + 1) << "cut at " << cut;
        fs::remove_all(d);
    }
    // A crash can also leave the file longer than what was written (zeros or old blocks).
    for (std::string junk : {std::string(4096, '\0'), std::string(100, '\xff')}) {
        const auto d = tmp / "junk";
        fs::create_directories(d);
        write_all(d / name, bytes + junk);
        {
            state_store store(d);
            expect_same(load(store, "s"), model.snapshot("s"), "junk after the last frame");
            record(store, "s", entry(999, "after-the-crash"));
        }
        EXPECT_EQ(read_all(d / name).substr(0, bytes.size()), bytes);
        state_store fresh(d);
        auto s = load(fresh, "s");
        ASSERT_FALSE(s.entries.empty());
        EXPECT_EQ(s.entries.back().key, "after-the-crash");
        fs::remove_all(d);
    }
}

TEST_F(FileStateStore, DamageBeforeTheLastFrameIsCorruptionWithFileAndOffset) {
    std::vector<std::uintmax_t> frame_at;  // offset of each appended frame
    {
        state_store store(dir);
        record(store, "s", entry(1, "a"));  // creates the journal: header + first frame
        for (int i = 2; i <= 4; ++i) {
            frame_at.push_back(journal_size(dir, "s"));
            record(store, "s", entry(static_cast<std::uint64_t>(i), "k" + std::to_string(i)));
        }
    }
    const auto path = dir / state_store::journal_name("s");
    const std::string good = read_all(path);
    struct damage {
        std::size_t at;
        const char* what;
    };
    for (auto [at, what] :
         {damage{frame_at[0] + 20, "payload of frame 2"}, damage{frame_at[0], "length of frame 2"},
          damage{frame_at[1] + 4, "checksum of frame 3"}, damage{20, "the first frame"}}) {
        std::string bad = good;
        bad[at] = static_cast<char>(bad[at] ^ 0x40);
        write_all(path, bad);
        state_store store(dir);
        scope_state out;
        diagnostics diag;
        auto ec = run(store.load("s", out, diag));
        EXPECT_EQ(ec, penne::errc::state_corrupt) << what;
        EXPECT_TRUE(is_fatal(ec));
        EXPECT_NE(diag.message.find(path.string()), std::string::npos) << diag.message;
        const std::size_t frame = at < frame_at[0]   ? 16
                                  : at < frame_at[1] ? frame_at[0]
                                                     : frame_at[1];
        EXPECT_NE(diag.message.find("byte offset " + std::to_string(frame)), std::string::npos)
            << what << ": " << diag.message;
        EXPECT_NE(diag.message.find("move it aside"), std::string::npos) << diag.message;
        // Never papered over by a write.
        EXPECT_EQ(run(store.record("s", entry(9, "z"), diag)), penne::errc::state_corrupt);
        EXPECT_EQ(read_all(path), bad) << what;
    }
}

TEST_F(FileStateStore, JournalRemovedWhileRunningIsWrittenAgainFromMemory) {
    state_store store(dir);
    record(store, "s", entry(1, "a"));
    commit(store, "s", {.durable_keys = {"a"}, .watermark = token(3), .retire_keys = {}});
    fs::remove(dir / state_store::journal_name("s"));
    record(store, "s", entry(2, "b"));
    fs::create_directories(tmp / "copy");
    fs::copy_file(dir / state_store::journal_name("s"),
                  tmp / "copy" / state_store::journal_name("s"));
    state_store fresh(tmp / "copy");
    auto s = load(fresh, "s");
    EXPECT_EQ(keys_of(s), (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(s.entries[0].durable);
    EXPECT_EQ(s.watermark, token(3));
}

TEST_F(FileStateStore, JournalOfANewerVersionIsRefused) {
    {
        state_store store(dir);
        record(store, "s", entry(1, "a"));
    }
    const auto path = dir / state_store::journal_name("s");
    std::string bytes = read_all(path);
    bytes[8] = 2;
    write_all(path, bytes);
    state_store store(dir);
    scope_state out;
    diagnostics diag;
    EXPECT_EQ(run(store.load("s", out, diag)), penne::errc::state_corrupt);
    EXPECT_NE(diag.message.find("format version 2"), std::string::npos) << diag.message;
    EXPECT_NE(diag.message.find(path.string()), std::string::npos) << diag.message;
}

TEST_F(FileStateStore, CompactionHappensAndPreservesTheState) {
    const journal_options opts{.compact_ratio = 4, .compact_min_bytes = 8192};
    recording_syscalls sys;
    memory_state_store model;
    std::uintmax_t largest = 0;
    {
        state_store store(dir, opts, sys);
        // Many batches through a scope that never holds more than a few open entries.
        for (std::uint64_t k = 1; k <= 150; ++k) {
            auto e = entry(k, "obj-" + std::to_string(k), k);
            record(store, "s", e);
            record(model, "s", e);
            commit_request req{.durable_keys = {e.key},
                               .watermark = token(static_cast<std::int64_t>(k)),
                               .retire_keys = {"obj-" + std::to_string(k - 2)}};
            commit(store, "s", req);
            commit(model, "s", req);
            largest = std::max(largest, journal_size(dir, "s"));
        }
        expect_same(load(store, "s"), model.snapshot("s"), "cached");
    }
    // 300 appends of ~100 bytes would be ~30 KB; compaction keeps it near the threshold.
    EXPECT_LE(largest, 8192u + 512);
    std::size_t compactions = 0;
    for (auto& c : sys.calls())
        compactions += c == "rename -> " + state_store::journal_name("s");
    EXPECT_GE(compactions, 3u);  // the creation, then at least two compactions
    state_store fresh(dir);
    expect_same(load(fresh, "s"), model.snapshot("s"), "after compactions");
    EXPECT_FALSE(has_temp_files(dir));
}

std::string legacy_json(const std::string& scope, const scope_state& s) {
    std::string out =
        R"({"format":"penne.scope_state","version":1,"scope":")" + scope + R"(","watermark":)" +
        (s.watermark ? "\"" + s.watermark->to_hex() + "\"" : "null") + R"(,"entries":[)";
    for (std::size_t i = 0; i < s.entries.size(); ++i) {
        const auto& e = s.entries[i];
        out += (i ? "," : "") + std::string(R"({"seq":)") + std::to_string(e.seq) + R"(,"key":")" +
               e.key + R"(","db":")" + e.db + R"(","coll":")" + e.coll + R"(","first":")" +
               e.first.to_hex() + R"(","last":")" + e.last.to_hex() + R"(","count":)" +
               std::to_string(e.count) + R"(,"durable":)" + (e.durable ? "true" : "false") + "}";
    }
    return out + "]}\n";
}

TEST_F(FileStateStore, StateFileOfTheJsonFormatIsMigratedOnFirstUse) {
    scope_state old;
    old.watermark = token(5);
    old.entries = {entry(1, "a", 10), entry(2, "b", 20)};
    old.entries[0].durable = true;
    fs::create_directories(dir);
    const auto legacy = dir / state_store::file_name("s");
    const auto journal = dir / state_store::journal_name("s");
    write_all(legacy, legacy_json("s", old));

    recording_syscalls sys;
    {
        state_store store(dir, sys);
        // A failed migration leaves the old file as it was.
        sys.fail_rename = EIO;
        scope_state out;
        diagnostics diag;
        EXPECT_EQ(run(store.load("s", out, diag)), penne::errc::io_error);
        EXPECT_NE(diag.message.find(legacy.string()), std::string::npos) << diag.message;
        EXPECT_TRUE(fs::exists(legacy));
        EXPECT_FALSE(fs::exists(journal));
        sys.fail_rename = 0;
        sys.clear();
        expect_same(load(store, "s"), old, "migrated");
    }
    // The JSON file went only after the journal was renamed into place and synced.
    auto calls = sys.calls();
    auto at = [&](const std::string& c) {
        return std::find(calls.begin(), calls.end(), c) - calls.begin();
    };
    EXPECT_LT(at("rename -> " + state_store::journal_name("s")), at("fsync dir"));
    EXPECT_LT(at("fsync dir"), at("unlink"));
    EXPECT_FALSE(fs::exists(legacy));
    EXPECT_TRUE(fs::exists(journal));
    {
        state_store store(dir);
        expect_same(load(store, "s"), old, "from the journal");
        record(store, "s", entry(3, "c"));
    }
    // A crash between the journal's rename and the JSON file's removal left both: the
    // journal is the state, and the leftover goes.
    write_all(legacy, legacy_json("s", scope_state{}));
    state_store store(dir);
    EXPECT_EQ(keys_of(load(store, "s")), (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_FALSE(fs::exists(legacy));
}

TEST_F(FileStateStore, OverlappingCallsShareOneWriteAndOneFdatasync) {
    recording_syscalls sys;
    state_store store(dir, sys);
    record(store, "s", entry(1, "a"));
    sys.clear();
    std::vector<std::function<asio::awaitable<error_code>(diagnostics&)>> ops;
    std::vector<manifest_entry> entries;
    for (std::uint64_t i = 2; i <= 9; ++i)
        entries.push_back(entry(i, "k" + std::to_string(i)));
    // Named: the operations' coroutines keep a reference to their scope id.
    const std::string scope = "s";
    for (auto& e : entries)
        ops.push_back([&store, &scope, &e](diagnostics& d) { return store.record(scope, e, d); });
    commit_request req{.durable_keys = {"a"}, .watermark = token(7), .retire_keys = {}};
    ops.push_back([&](diagnostics& d) { return store.commit(scope, req, d); });
    for (auto ec : run_overlapping(std::move(ops)))
        EXPECT_FALSE(ec) << ec.message();
    EXPECT_EQ(sys.count("write"), 1u);
    EXPECT_EQ(sys.count("fdatasync"), 1u);

    // A failure reaches every call of the group, and none of them took effect.
    sys.fail_file_fsync = EIO;
    std::vector<std::function<asio::awaitable<error_code>(diagnostics&)>> failing;
    auto x = entry(20, "x"), y = entry(21, "y");
    failing.push_back([&](diagnostics& d) { return store.record(scope, x, d); });
    failing.push_back([&](diagnostics& d) { return store.record(scope, y, d); });
    for (auto ec : run_overlapping(std::move(failing)))
        EXPECT_EQ(ec, penne::errc::io_error);
    sys.fail_file_fsync = 0;

    state_store fresh(tmp / "copy");
    fs::create_directories(tmp / "copy");
    fs::copy_file(dir / state_store::journal_name("s"),
                  tmp / "copy" / state_store::journal_name("s"));
    auto s = load(fresh, "s");
    EXPECT_EQ(keys_of(s),
              (std::vector<std::string>{"a", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"}));
    EXPECT_TRUE(s.entries[0].durable);
    EXPECT_EQ(s.watermark, token(7));
}

TEST_F(FileStateStore, ACallCancelledWhileItsFrameIsWrittenReportsTheOutcome) {
    state_store store(dir);
    record(store, "s", entry(1, "a"));
    asio::io_context ctx;
    asio::cancellation_signal signal;
    const std::string scope = "s";
    auto x = entry(2, "x"), y = entry(3, "y");
    std::optional<error_code> rx, ry;
    start_operation(ctx, rx, [&](diagnostics& d) { return store.record(scope, x, d); });
    start_operation(
        ctx, ry, [&](diagnostics& d) { return store.record(scope, y, d); }, signal.slot());
    // Runs once both calls are in the group, before the first one writes it.
    asio::post(ctx, [&] { signal.emit(asio::cancellation_type::terminal); });
    ctx.run();
    ASSERT_TRUE(rx && ry);
    EXPECT_FALSE(*rx);
    EXPECT_FALSE(*ry) << "the frame was written, so the cancelled call took effect";
    EXPECT_EQ(keys_of(load(store, "s")), (std::vector<std::string>{"a", "x", "y"}));
}

TEST_F(FileStateStore, BytesAppendedPerOperationDoNotDependOnOpenEntries) {
    // The cost of record() and commit() is what they append (plus one fdatasync): the same
    // for a scope with 3 open entries as for one with 5,000.
    auto growth = [&](std::size_t open) {
        const auto d = tmp / ("open" + std::to_string(open));
        state_store store(d);
        std::vector<manifest_entry> entries;
        for (std::size_t i = 0; i < open; ++i)
            entries.push_back(entry(i + 1, "coll" + std::to_string(100000 + i) + "/batch"));
        std::vector<std::function<asio::awaitable<error_code>(diagnostics&)>> ops;
        const std::string scope = "s";
        for (auto& e : entries)
            ops.push_back(
                [&store, &scope, &e](diagnostics& dg) { return store.record(scope, e, dg); });
        for (auto ec : run_overlapping(std::move(ops)))
            EXPECT_FALSE(ec);
        const auto s0 = journal_size(d, "s");
        record(store, "s", entry(open + 1, "probe-batch-key"));
        const auto s1 = journal_size(d, "s");
        commit(store, "s",
               {.durable_keys = {"probe-batch-key"}, .watermark = token(1), .retire_keys = {}});
        const auto s2 = journal_size(d, "s");
        return std::pair{s1 - s0, s2 - s1};
    };
    auto small = growth(3);
    auto large = growth(5000);
    EXPECT_EQ(small, large);
    EXPECT_LT(small.first, 200u);
    EXPECT_LT(small.second, 100u);
}

TEST_F(FileStateStore, SurvivesSigkillDuringAppendsAndCompactions) {
    void* mem = ::mmap(nullptr, sizeof(shared_progress), PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(mem, MAP_FAILED);
    auto* progress = new (mem) shared_progress;
    std::mt19937 rng(20261206);
    std::uniform_int_distribution<int> writes_before(10, 200);
    std::uniform_int_distribution<int> delay_us(0, 5000);
    // Compaction every ~20 operations, so that kills land in it too.
    const journal_options opts{.compact_ratio = 2, .compact_min_bytes = 2048};
    int max_completed = 0;
    for (int round = 0; round < 16; ++round) {
        auto round_dir = dir / ("k" + std::to_string(round));
        progress->completed = 0;
        progress->child_error = 0;
        const auto wanted = static_cast<std::uint64_t>(writes_before(rng));
        const auto delay = std::chrono::microseconds(delay_us(rng));
        pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0)
            crash_writer(round_dir, progress, opts);
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
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
        state_store fresh(round_dir, opts);
        auto s = load(fresh, "crash.scope");
        EXPECT_TRUE(same(s, expected_state(n)) || same(s, expected_state(n + 1)))
            << "round " << round << ": after " << n << " acknowledged writes the journal holds "
            << s.entries.size() << " entries";
        EXPECT_FALSE(has_temp_files(round_dir)) << round;
    }
    ::munmap(mem, sizeof(shared_progress));
    EXPECT_GE(max_completed, 100);
}

// With a blocking executor, the I/O runs on its threads: a record() waiting for its fdatasync
// leaves the io_context free for other handlers, and completes once the sync does.
TEST_F(FileStateStore, RecordWaitingForItsFdatasyncDoesNotBlockTheIoContext) {
    recording_syscalls sys;
    const std::string scope = "s";
    {
        asio::thread_pool pool(2);
        state_store store(dir, journal_options{.blocking = pool.get_executor()}, sys);
        record(store, scope, entry(1, "a"));  // creates the journal
        sys.sync_gate.hold();
        asio::io_context ctx;
        std::optional<error_code> result;
        bool ran_meanwhile = false;
        auto x = entry(2, "x");
        start_operation(ctx, result, [&](diagnostics& d) { return store.record(scope, x, d); });
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
                bool blocked = co_await eventually([&] { return sys.sync_gate.waiting() == 1; });
                ran_meanwhile = blocked && !result;
                sys.sync_gate.release();
            },
            asio::detached);
        ctx.run();
        EXPECT_TRUE(ran_meanwhile) << "the io_context was blocked by the fdatasync";
        ASSERT_TRUE(result);
        EXPECT_FALSE(*result) << result->message();
        EXPECT_EQ(sys.count("fdatasync"), 1u);
    }
    state_store fresh(dir);
    EXPECT_EQ(keys_of(load(fresh, scope)), (std::vector<std::string>{"a", "x"}));
}

// Group commit: the calls that arrive while a frame is being synced all go into the next
// frame, so 1 call in flight and 10 arriving meanwhile take 2 fdatasyncs.
TEST_F(FileStateStore, CallsArrivingDuringAFlushShareTheNextFrame) {
    recording_syscalls sys;
    const std::string scope = "s";
    std::vector<manifest_entry> queued;
    for (std::uint64_t i = 3; i <= 12; ++i)
        queued.push_back(entry(i, "q" + std::to_string(i)));
    {
        asio::thread_pool pool(2);
        state_store store(dir, journal_options{.blocking = pool.get_executor()}, sys);
        record(store, scope, entry(1, "a"));
        sys.clear();
        sys.sync_gate.hold();
        asio::io_context ctx;
        std::vector<std::optional<error_code>> results(1 + queued.size());
        auto first = entry(2, "first");
        auto spawn_record = [&](const manifest_entry& e, std::size_t i) {
            start_operation(ctx, results[i], [&store, &scope, &e](diagnostics& d) {
                return store.record(scope, e, d);
            });
        };
        spawn_record(first, 0);
        bool blocked = false;
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
                blocked = co_await eventually([&] { return sys.sync_gate.waiting() == 1; });
                for (std::size_t i = 0; i < queued.size(); ++i)
                    spawn_record(queued[i], i + 1);
                // Let all ten join the waiting group before the first frame completes.
                auto ex = co_await asio::this_coro::executor;
                for (int i = 0; i < 3; ++i)
                    co_await asio::post(ex, asio::use_awaitable);
                sys.sync_gate.release();
            },
            asio::detached);
        ctx.run();
        EXPECT_TRUE(blocked);
        for (auto& r : results) {
            ASSERT_TRUE(r);
            EXPECT_FALSE(*r) << r->message();
        }
        EXPECT_EQ(sys.count("fdatasync"), 2u);
        EXPECT_EQ(sys.count("write"), 2u);
    }
    state_store fresh(dir);
    std::vector<std::string> want = {"a", "first"};
    for (auto& e : queued)
        want.push_back(e.key);
    EXPECT_EQ(keys_of(load(fresh, scope)), want);
}

TEST_F(FileStateStore, RecordManyWritesOneFrameWithOneFdatasync) {
    recording_syscalls sys;
    const std::string scope = "s";
    std::vector<manifest_entry> batch;
    for (std::uint64_t i = 2; i <= 7; ++i)
        batch.push_back(entry(i, "m" + std::to_string(i)));
    {
        state_store store(dir, sys);
        record(store, scope, entry(1, "a"));
        sys.clear();
        diagnostics diag;
        auto ec = run(store.record_many(scope, batch, diag));
        ASSERT_FALSE(ec) << diag.message;
        EXPECT_EQ(sys.count("write"), 1u);
        EXPECT_EQ(sys.count("fdatasync"), 1u);
        // Nothing to write: no I/O, no error.
        ec = run(store.record_many(scope, std::span<const manifest_entry>(), diag));
        EXPECT_FALSE(ec);
        EXPECT_EQ(sys.count("write"), 1u);
        // As the first operation of a new scope: the journal is created with all of them.
        ec = run(store.record_many("t", batch, diag));
        ASSERT_FALSE(ec) << diag.message;
    }
    state_store fresh(dir);
    std::vector<std::string> want = {"a"};
    for (auto& e : batch)
        want.push_back(e.key);
    auto s = load(fresh, scope);
    EXPECT_EQ(keys_of(s), want);
    EXPECT_EQ(s.entries.back(), batch.back());
    EXPECT_EQ(keys_of(load(fresh, "t")), std::vector<std::string>(want.begin() + 1, want.end()));
}

// A failed record_many leaves all or none of its entries, never a gap: none when the
// unsynced frame could be cut off again, all when even that failed (the frame was written
// whole, and a frame is one unit on replay).
TEST_F(FileStateStore, FailedRecordManyLeavesAllOrNoneOfItsEntries) {
    for (bool truncate_fails : {false, true}) {
        SCOPED_TRACE(truncate_fails ? "truncate fails too" : "truncate works");
        scratch_dir d;
        recording_syscalls sys;
        const std::string scope = "s";
        std::vector<manifest_entry> batch;
        for (std::uint64_t i = 2; i <= 6; ++i)
            batch.push_back(entry(i, "m" + std::to_string(i)));
        {
            state_store store(d.path(), sys);
            record(store, scope, entry(1, "a"));
            sys.fail_file_fsync = EIO;
            if (truncate_fails)
                sys.fail_truncate = EIO;
            diagnostics diag;
            auto ec = run(store.record_many(scope, batch, diag));
            EXPECT_EQ(ec, penne::errc::io_error);
            EXPECT_NE(diag.message.find("fdatasync"), std::string::npos) << diag.message;
            sys.fail_file_fsync = sys.fail_truncate = 0;
        }
        state_store fresh(d.path());
        auto keys = keys_of(load(fresh, scope));
        std::vector<std::string> all = {"a"};
        for (auto& e : batch)
            all.push_back(e.key);
        if (truncate_fails) {
            EXPECT_EQ(keys, all);
        } else {
            EXPECT_EQ(keys, (std::vector<std::string>{"a"}));
        }
        // And the store goes on appending after either outcome.
        record(fresh, scope, entry(9, "after"));
        EXPECT_EQ(keys_of(load(fresh, scope)).back(), "after");
    }
}

// Scopes append in parallel on the blocking executor: two scopes' fdatasyncs are in flight at once,
// while one scope never has two (a spare third thread stays idle).
TEST_F(FileStateStore, DifferentScopesSyncInParallelOneScopeNever) {
    recording_syscalls sys;
    asio::thread_pool pool(3);
    state_store store(dir, journal_options{.blocking = pool.get_executor()}, sys);
    const std::string s1 = "one", s2 = "two";
    record(store, s1, entry(1, "a"));
    record(store, s2, entry(1, "a"));
    sys.sync_gate.hold();
    asio::io_context ctx;
    std::vector<std::optional<error_code>> results(3);
    auto x = entry(2, "x"), y = entry(3, "y");
    auto spawn_record = [&](const std::string& scope, const manifest_entry& e, std::size_t i) {
        start_operation(ctx, results[i],
                        [&store, &scope, &e](diagnostics& d) { return store.record(scope, e, d); });
    };
    spawn_record(s1, x, 0);
    spawn_record(s2, x, 1);
    bool both = false, one_per_scope = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            both = co_await eventually([&] { return sys.sync_gate.waiting() == 2; });
            // A second call of scope one waits for the frame in flight instead of syncing.
            spawn_record(s1, y, 2);
            asio::steady_timer t(co_await asio::this_coro::executor);
            t.expires_after(std::chrono::milliseconds(50));
            co_await t.async_wait(asio::use_awaitable);
            one_per_scope = sys.sync_gate.waiting() == 2 && !results[2];
            sys.sync_gate.release();
        },
        asio::detached);
    ctx.run();
    EXPECT_TRUE(both) << "the two scopes' syncs did not overlap";
    EXPECT_TRUE(one_per_scope);
    for (auto& r : results) {
        ASSERT_TRUE(r);
        EXPECT_FALSE(*r) << r->message();
    }
    EXPECT_EQ(keys_of(load(store, s1)), (std::vector<std::string>{"a", "x", "y"}));
    EXPECT_EQ(keys_of(load(store, s2)), (std::vector<std::string>{"a", "x"}));
}

}  // namespace
}  // namespace penne::file
