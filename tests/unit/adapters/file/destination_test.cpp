#include <penne/file/destination.hpp>

#include "file_test_support.hpp"

#include <boost/asio/detached.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

namespace penne::file {
namespace {

using namespace test;

sealed_object object(std::string_view key, std::string_view body) {
    sealed_object o;
    o.key = key;
    o.body = body;
    o.content_type = "application/x-ndjson";
    o.event_count = 1;
    return o;
}

class FileDestination : public ::testing::Test {
protected:
    scratch_dir tmp;
    fs::path root = tmp / "out";

    error_code put(destination& d, std::string_view key, std::string_view body,
                   diagnostics* diag_out = nullptr) {
        diagnostics diag;
        auto ec = run(d.put(object(key, body), diag));
        if (diag_out)
            *diag_out = diag;
        return ec;
    }
};

TEST_F(FileDestination, WritesNestedKeysCreatingDirectories) {
    destination d(root);
    const std::string key = "penne/shop/orders/2026/01/22/05/0123abcd.jsonl.zst";
    const std::string body = std::string("{\"a\":1}\n", 8) + std::string(100000, 'z');
    ASSERT_FALSE(put(d, key, body));
    EXPECT_EQ(read_all(root / key), body);
    ASSERT_FALSE(put(d, "top-level.jsonl", ""));
    EXPECT_TRUE(fs::exists(root / "top-level.jsonl"));
    EXPECT_EQ(fs::file_size(root / "top-level.jsonl"), 0u);
    EXPECT_EQ(d.describe(), "file:" + root.string());
}

TEST_F(FileDestination, SameKeyAgainReplacesTheObject) {
    destination d(root);
    ASSERT_FALSE(put(d, "a/b.jsonl", "first version, longer than the second"));
    ASSERT_FALSE(put(d, "a/b.jsonl", "second"));
    EXPECT_EQ(read_all(root / "a/b.jsonl"), "second");
    ASSERT_FALSE(put(d, "a/b.jsonl", "second"));  // a replay with the same bytes
    EXPECT_EQ(read_all(root / "a/b.jsonl"), "second");
    EXPECT_EQ(tree(root), (std::set<std::string>{"a/", "a/b.jsonl"}));
}

TEST_F(FileDestination, RejectsKeysThatCouldEscapeTheRoot) {
    destination d(root);
    const std::vector<std::string> bad = {"",
                                          "/etc/passwd",
                                          "../outside",
                                          "a/../../outside",
                                          "a/..",
                                          "..",
                                          ".",
                                          "a/./b",
                                          "a//b",
                                          "a/",
                                          std::string("a\0b", 3),
                                          "a/.b.jsonl.penne-tmp-1-2"};
    for (auto& key : bad) {
        diagnostics diag;
        auto ec = put(d, key, "x", &diag);
        EXPECT_EQ(ec, errc::permanent_rejection) << "key '" << key << "'";
        EXPECT_TRUE(is_fatal(ec));
        EXPECT_NE(diag.message.find("refusing object key"), std::string::npos) << diag.message;
    }
    // Nothing was written anywhere, inside or outside the root.
    EXPECT_EQ(tree(tmp.path()), std::set<std::string>{});
}

TEST_F(FileDestination, DoesNotFollowSymlinksPlantedInsideTheRoot) {
    auto outside = tmp / "outside";
    fs::create_directories(outside);
    fs::create_directories(root);
    fs::create_directory_symlink(outside, root / "link");
    destination d(root);
    diagnostics diag;
    auto ec = put(d, "link/x.jsonl", "x", &diag);
    EXPECT_EQ(ec, errc::permanent_rejection);
    EXPECT_TRUE(fs::is_empty(outside));
    EXPECT_NE(diag.message.find("link"), std::string::npos) << diag.message;
}

TEST_F(FileDestination, AFileWhereADirectoryIsNeededIsPermanent) {
    destination d(root);
    ASSERT_FALSE(put(d, "a", "file"));
    diagnostics diag;
    EXPECT_EQ(put(d, "a/b", "x", &diag), errc::permanent_rejection);
    EXPECT_NE(diag.message.find("Not a directory"), std::string::npos) << diag.message;
}

TEST_F(FileDestination, FsyncsObjectBeforeRenameAndDirectoriesAfterChanges) {
    // And drops the object's pages from the page cache once they are on disk (penne never
    // reads them back).
    recording_syscalls sys;
    destination d(root, sys);
    ASSERT_FALSE(put(d, "x/y.jsonl", "body"));
    auto calls = sys.calls();
    std::vector<std::string> shape;
    for (auto& c : calls)
        shape.push_back(c.starts_with("create .y.jsonl") ? "create tmp" : c);
    // The root is created (its parent fsynced), then x (root fsynced), then the object.
    std::vector<std::string> expected = {
        "mkdir out", "fsync dir",  "mkdir x",     "fsync dir",         "create tmp",
        "write",     "fsync file", "drop cached", "rename -> y.jsonl", "fsync dir"};
    EXPECT_EQ(shape, expected);

    sys.clear();
    ASSERT_FALSE(put(d, "x/y.jsonl", "body 2"));
    shape.clear();
    for (auto& c : sys.calls())
        shape.push_back(c.starts_with("create .y.jsonl") ? "create tmp" : c);
    expected = {"create tmp",        "write",    "fsync file", "drop cached",
                "rename -> y.jsonl", "fsync dir"};
    EXPECT_EQ(shape, expected);
}

// Pages of the file at `p` that are in the page cache, and its page count.
std::pair<std::size_t, std::size_t> cached_pages(const fs::path& p) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return {0, 0};
    const auto size = static_cast<std::size_t>(fs::file_size(p));
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    const std::size_t pages = (size + page - 1) / page;
    void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);  // maps, reads nothing
    ::close(fd);
    if (map == MAP_FAILED)
        return {0, pages};
    std::vector<unsigned char> resident(pages);
    std::size_t n = 0;
    if (::mincore(map, size, resident.data()) == 0)
        for (auto r : resident)
            n += r & 1;
    ::munmap(map, size);
    return {n, pages};
}

TEST_F(FileDestination, AWrittenObjectLeavesThePageCache) {
    struct statfs fsinfo {};
    ASSERT_EQ(::statfs(tmp.path().c_str(), &fsinfo), 0);
    if (fsinfo.f_type == TMPFS_MAGIC)
        GTEST_SKIP() << "on tmpfs the page cache is the file's storage";
    destination d(root);
    const std::string body(4 << 20, 'x');
    ASSERT_FALSE(put(d, "k/object.jsonl", body));
    const auto [cached, pages] = cached_pages(root / "k/object.jsonl");
    ASSERT_EQ(pages, std::size_t(4 << 20) / static_cast<std::size_t>(::sysconf(_SC_PAGESIZE)));
    // All of it would be cached had it stayed (it was written a moment ago). A page or two
    // may be read back in by something else (a scanner, the test framework): not most.
    EXPECT_LT(cached, pages / 8) << cached << " of " << pages << " pages still cached";
    EXPECT_EQ(read_all(root / "k/object.jsonl"), body);  // still all there, from the disk
}

struct injected {
    const char* name;
    int recording_syscalls::*fault;
    int err;
    errc expected;
};

class FileDestinationFault : public FileDestination,
                             public ::testing::WithParamInterface<injected> {};

TEST_P(FileDestinationFault, IsClassifiedWithThePathAndLeavesNoTempFile) {
    recording_syscalls sys;
    destination d(root, sys);
    ASSERT_FALSE(put(d, "db/c/obj.jsonl", "old"));
    sys.*(GetParam().fault) = GetParam().err;
    diagnostics diag;
    auto ec = put(d, "db/c/obj.jsonl", "new", &diag);
    EXPECT_EQ(ec, GetParam().expected) << diag.message;
    EXPECT_EQ(is_retryable(ec), GetParam().expected == errc::io_error);
    EXPECT_NE(diag.message.find(root.string()), std::string::npos) << diag.message;
    EXPECT_NE(diag.message.find(errno_name(GetParam().err)), std::string::npos) << diag.message;
    EXPECT_NE(diag.message.find("db/c/obj.jsonl"), std::string::npos) << diag.message;
    EXPECT_FALSE(has_temp_files(root));
    if (GetParam().fault != &recording_syscalls::fail_dir_fsync) {
        EXPECT_EQ(read_all(root / "db/c/obj.jsonl"), "old");  // never a torn object
    }
    sys.*(GetParam().fault) = 0;
    ASSERT_FALSE(put(d, "db/c/obj.jsonl", "new"));
    EXPECT_EQ(read_all(root / "db/c/obj.jsonl"), "new");
}

INSTANTIATE_TEST_SUITE_P(
    Errnos, FileDestinationFault,
    ::testing::Values(
        injected{"write_enospc", &recording_syscalls::fail_write, ENOSPC, errc::io_error},
        injected{"write_eio", &recording_syscalls::fail_write, EIO, errc::io_error},
        injected{"fsync_eio", &recording_syscalls::fail_file_fsync, EIO, errc::io_error},
        injected{"dir_fsync_eio", &recording_syscalls::fail_dir_fsync, EIO, errc::io_error},
        injected{"create_eacces", &recording_syscalls::fail_create, EACCES,
                 errc::permanent_rejection},
        injected{"create_erofs", &recording_syscalls::fail_create, EROFS,
                 errc::permanent_rejection},
        injected{"rename_eacces", &recording_syscalls::fail_rename, EACCES,
                 errc::permanent_rejection},
        injected{"create_enospc", &recording_syscalls::fail_create, ENOSPC, errc::io_error}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(FileDestination, MissingDirectoryThatCannotBeCreatedIsPermanent) {
    recording_syscalls sys;
    sys.fail_mkdir = EACCES;
    destination d(root, sys);
    diagnostics diag;
    EXPECT_EQ(put(d, "a/b", "x", &diag), errc::permanent_rejection);
    EXPECT_NE(diag.message.find("Permission denied"), std::string::npos) << diag.message;
    EXPECT_NE(diag.message.find(root.string()), std::string::npos) << diag.message;
}

TEST_F(FileDestination, NoTempFilesAfterManyWrites) {
    destination d(root);
    for (int i = 0; i < 50; ++i) {
        ASSERT_FALSE(put(d, "p/" + std::to_string(i % 7) + "/o.jsonl", std::to_string(i)));
    }
    EXPECT_FALSE(has_temp_files(root));
    EXPECT_EQ(tree(root).size(), 1u + 7u * 2u);
}

TEST_F(FileDestination, ConcurrentPutsOfDifferentKeys) {
    destination d(root);
    asio::thread_pool pool(4);
    std::vector<std::future<error_code>> done;
    for (int i = 0; i < 64; ++i) {
        done.push_back(asio::co_spawn(
            pool,
            [&d, i]() -> asio::awaitable<error_code> {
                std::string key = "shared/prefix/" + std::to_string(i % 3) + "/obj-" +
                                  std::to_string(i) + ".jsonl";
                std::string body(1000 + i, static_cast<char>('a' + i % 26));
                diagnostics diag;
                co_return co_await d.put(object(key, body), diag);
            },
            asio::use_future));
    }
    for (auto& f : done)
        EXPECT_FALSE(f.get());
    pool.join();
    for (int i = 0; i < 64; ++i) {
        auto p = root / "shared/prefix" / std::to_string(i % 3) /
                 ("obj-" + std::to_string(i) + ".jsonl");
        EXPECT_EQ(read_all(p), std::string(1000 + i, static_cast<char>('a' + i % 26)));
    }
    EXPECT_FALSE(has_temp_files(root));
}

TEST_F(FileDestination, CheckCreatesTheRootAndLeavesItEmpty) {
    destination d(root);
    diagnostics diag;
    ASSERT_FALSE(run(d.check(diag))) << diag.message;
    EXPECT_TRUE(fs::is_directory(root));
    EXPECT_TRUE(fs::is_empty(root));
}

TEST_F(FileDestination, CheckReportsUnwritableRoot) {
    recording_syscalls sys;
    sys.fail_create = EROFS;
    destination d(root, sys);
    diagnostics diag;
    auto ec = run(d.check(diag));
    EXPECT_EQ(ec, errc::permanent_rejection);
    EXPECT_NE(diag.message.find("Read-only file system"), std::string::npos) << diag.message;
    EXPECT_NE(diag.message.find(root.string()), std::string::npos) << diag.message;
}

TEST_F(FileDestination, CheckReportsARootThatIsAFile) {
    write_all(root, "not a directory");
    destination d(root);
    diagnostics diag;
    EXPECT_EQ(run(d.check(diag)), errc::permanent_rejection);
    EXPECT_NE(diag.message.find(root.string()), std::string::npos) << diag.message;
}

TEST_F(FileDestination, CancelledPutWritesNothing) {
    destination d(root);
    diagnostics diag;
    EXPECT_EQ(run(d.put(object("a.jsonl", "x"), diag), /*cancelled=*/true), errc::cancelled);
    EXPECT_FALSE(fs::exists(root / "a.jsonl"));
}

// With a blocking executor, the I/O runs on its threads: a put() waiting for its fsync leaves the
// io_context free for other handlers, and completes once the sync does.
TEST_F(FileDestination, PutWaitingForItsFsyncDoesNotBlockTheIoContext) {
    recording_syscalls sys;
    asio::thread_pool pool(2);
    destination d(root, destination_options{.blocking = pool.get_executor()}, sys);
    sys.sync_gate.hold();
    asio::io_context ctx;
    std::optional<error_code> result;
    bool ran_meanwhile = false;
    const auto obj = object("a/b.jsonl", "body");
    start_operation(ctx, result, [&](diagnostics& diag) { return d.put(obj, diag); });
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            bool blocked = co_await eventually([&] { return sys.sync_gate.waiting() == 1; });
            ran_meanwhile = blocked && !result && !fs::exists(root / "a/b.jsonl");
            sys.sync_gate.release();
        },
        asio::detached);
    ctx.run();
    EXPECT_TRUE(ran_meanwhile) << "the io_context was blocked by the fsync";
    ASSERT_TRUE(result);
    EXPECT_FALSE(*result) << result->message();
    EXPECT_EQ(read_all(root / "a/b.jsonl"), "body");
}

// put() calls of different keys run in parallel, as many as the pool has threads.
TEST_F(FileDestination, PutsOfDifferentKeysSyncInParallel) {
    recording_syscalls sys;
    asio::thread_pool pool(3);
    destination d(root, destination_options{.blocking = pool.get_executor()}, sys);
    // sealed_object holds views: the keys and bodies live here.
    std::vector<std::string> keys, bodies;
    for (int i = 0; i < 4; ++i) {
        keys.push_back("p/k" + std::to_string(i) + ".jsonl");
        bodies.push_back("body " + std::to_string(i));
    }
    std::vector<sealed_object> objs;
    for (int i = 0; i < 4; ++i)
        objs.push_back(object(keys[i], bodies[i]));
    ASSERT_FALSE(put(d, "p/first.jsonl", "x"));  // the directory exists
    sys.sync_gate.hold();
    asio::io_context ctx;
    std::vector<std::optional<error_code>> results(objs.size());
    for (std::size_t i = 0; i < objs.size(); ++i) {
        start_operation(ctx, results[i],
                        [&d, &objs, i](diagnostics& diag) { return d.put(objs[i], diag); });
    }
    bool three = false, not_four = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            three = co_await eventually([&] { return sys.sync_gate.waiting() == 3; });
            asio::steady_timer t(co_await asio::this_coro::executor);
            t.expires_after(std::chrono::milliseconds(50));
            co_await t.async_wait(asio::use_awaitable);
            not_four = sys.sync_gate.waiting() == 3;  // the fourth queues for a thread
            sys.sync_gate.release();
        },
        asio::detached);
    ctx.run();
    EXPECT_TRUE(three);
    EXPECT_TRUE(not_four);
    for (std::size_t i = 0; i < objs.size(); ++i) {
        ASSERT_TRUE(results[i]);
        EXPECT_FALSE(*results[i]) << results[i]->message();
        EXPECT_EQ(read_all(root / keys[i]), bodies[i]);
    }
    EXPECT_FALSE(has_temp_files(root));
}

// A put that uses a directory another put just made, before that one fsynced it into its
// parent, fsyncs the parent itself before its object counts as written: its completion
// must not depend on the other put's progress.
TEST_F(FileDestination, PutIntoADirectoryAnotherPutIsStillCreatingFsyncsItsParent) {
    recording_syscalls sys;
    asio::thread_pool pool(2);
    destination d(root, destination_options{.blocking = pool.get_executor()}, sys);
    ASSERT_FALSE(put(d, "top.jsonl", "x"));  // the root exists
    sys.clear();
    sys.mkdir_gate.hold();
    asio::io_context ctx;
    std::optional<error_code> maker, user;
    const auto a = object("new/a.jsonl", "a"), b = object("new/b.jsonl", "b");
    start_operation(ctx, maker, [&](diagnostics& diag) { return d.put(a, diag); });
    bool user_first = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            // The first put made "new" and waits before fsyncing the root.
            co_await eventually([&] { return sys.mkdir_gate.waiting() == 1; });
            diagnostics diag;
            error_code ec = co_await d.put(b, diag);
            user = ec;
            user_first = !maker.has_value();
            sys.mkdir_gate.release();
        },
        asio::detached);
    ctx.run();
    ASSERT_TRUE(maker && user);
    EXPECT_FALSE(*maker);
    EXPECT_FALSE(*user);
    EXPECT_TRUE(user_first);
    auto calls = sys.calls();
    auto at = [&](const std::string& c) {
        return std::find(calls.begin(), calls.end(), c) - calls.begin();
    };
    ASSERT_LT(at("mkdir new"), at("rename -> b.jsonl"));
    // Between the mkdir and b's rename: the root fsync b did (b's own directory fsync
    // comes after its rename).
    EXPECT_NE(std::find(calls.begin() + at("mkdir new"), calls.begin() + at("rename -> b.jsonl"),
                        "fsync dir"),
              calls.begin() + at("rename -> b.jsonl"));
    EXPECT_EQ(read_all(root / "new/a.jsonl"), "a");
    EXPECT_EQ(read_all(root / "new/b.jsonl"), "b");
}

}  // namespace
}  // namespace penne::file
