// End to end with document images: mongosim (a real process, written to by libmongoc) →
// penne (a real process, [mongodb] full_document_before_change / full_document /
// split_large_events) → a local directory of JSON lines, read back with libbson.
//  - every update and delete object carries the document's before-image (and updates the
//    post-image of that change);
//  - an update whose pre- and post-images together are about 20 MiB (over MongoDB's 16 MiB
//    event limit) reaches the output as one whole event, not as fragments, exactly once across
//    a restart of penne.

#include <mongoc/mongoc.h>

#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "mongo_inserter.hpp"
#include "process.hpp"
#include "temp_dir.hpp"

namespace penne::test {
namespace {

using namespace std::chrono_literals;

const auto* const env = ::testing::AddGlobalTestEnvironment(new mongoc_env);

constexpr std::size_t MiB = 1024 * 1024;

// One JSON line of the output, parsed.
struct line {
    bson_t* doc = nullptr;
    std::size_t bytes = 0;
};

std::string utf8_at(const bson_t* doc, const char* path) {
    bson_iter_t it, f;
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &f) &&
        BSON_ITER_HOLDS_UTF8(&f))
        return bson_iter_utf8(&f, nullptr);
    return {};
}

std::int64_t int_at(const bson_t* doc, const char* path) {
    bson_iter_t it, f;
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &f))
        return bson_iter_as_int64(&f);
    return -1;
}

bool has(const bson_t* doc, const char* path) {
    bson_iter_t it, f;
    return bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &f);
}

class images_e2e : public ::testing::Test {
protected:
    void SetUp() override {
        port_ = free_port();
        mongosim_ = std::make_unique<process>(
            std::vector<std::string>{build_path("tests/mongosim/mongosim"), "--port",
                                     std::to_string(port_)},
            dir_ / "mongosim.log");
        ASSERT_TRUE(mongosim_->wait_for_output("mongosim listening on", 10s)) << mongosim_->log();
        const std::string uri =
            "mongodb://127.0.0.1:" + std::to_string(port_) + "/?directConnection=true";
        client_ = mongoc_client_new(uri.c_str());
    }
    void TearDown() override {
        for (auto& l : lines_)
            bson_destroy(l.doc);
        mongoc_client_destroy(client_);
    }

    void command(const char* db, bson_t* cmd) {
        bson_error_t err;
        bson_t reply;
        const bool ok = mongoc_client_command_simple(client_, db, cmd, nullptr, &reply, &err);
        bson_destroy(&reply);
        bson_destroy(cmd);
        ASSERT_TRUE(ok) << err.message;
    }
    void create_with_images(const char* coll) {
        command("shop", BCON_NEW("create", BCON_UTF8(coll), "changeStreamPreAndPostImages", "{",
                                 "enabled", BCON_BOOL(true), "}"));
    }
    void write(const char* coll, const char* op, bson_t* filter_or_doc, bson_t* update = nullptr) {
        mongoc_collection_t* c = mongoc_client_get_collection(client_, "shop", coll);
        bson_error_t err;
        bool ok;
        if (std::string(op) == "insert")
            ok = mongoc_collection_insert_one(c, filter_or_doc, nullptr, nullptr, &err);
        else if (std::string(op) == "update")
            ok = mongoc_collection_update_one(c, filter_or_doc, update, nullptr, nullptr, &err);
        else
            ok = mongoc_collection_delete_one(c, filter_or_doc, nullptr, nullptr, &err);
        mongoc_collection_destroy(c);
        bson_destroy(filter_or_doc);
        if (update)
            bson_destroy(update);
        ASSERT_TRUE(ok) << op << ": " << err.message;
    }

    void write_config(const std::string& mongodb_extra) {
        std::ofstream f(dir_ / "penne.toml");
        f << "[mongodb]\nuri = \"mongodb://127.0.0.1:" << port_
          << "/?directConnection=true\"\nmax_await_ms = 200\n"
          << mongodb_extra << "\n[[watch]]\nlevel = \"database\"\ndatabase = \"shop\"\n"
          << "[batch]\nmax_events = 1000\nmax_age_ms = 300\n"
          << "[output]\nprefix = \"cdc\"\ncompression = \"none\"\n"
          << "[destination]\ntype = \"local\"\npath = \"" << (dir_ / "out") << "\"\n"
          << "[state]\ntype = \"file\"\npath = \"" << (dir_ / "state") << "\"\n"
          << "[pipeline]\ncheckpoint_interval_ms = 100\n"
          << "[log]\nlevel = \"debug\"\nprogress_interval_ms = 0\n";
    }

    std::unique_ptr<process> start_penne() {
        auto p = std::make_unique<process>(
            std::vector<std::string>{build_path("app/penne"), "run", "-c", dir_ / "penne.toml"},
            dir_ / "penne.log");
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        while (std::chrono::steady_clock::now() < deadline) {
            auto log = p->log();
            std::size_t open = 0;
            for (std::size_t pos = 0;
                 (pos = log.find("change stream open", pos)) != std::string::npos; ++pos)
                ++open;
            if (open > opened_) {
                opened_ = open;
                return p;
            }
            if (!p->running())
                break;
            std::this_thread::sleep_for(20ms);
        }
        ADD_FAILURE() << "penne did not open its stream:\n" << p->log();
        return p;
    }

    void stop_penne(std::unique_ptr<process>& p) {
        p->signal(SIGTERM);
        auto code = p->wait(60s);
        ASSERT_TRUE(code) << "penne did not stop";
        EXPECT_EQ(*code, 0) << p->log();
        p.reset();
    }

    std::string penne_log() const {
        std::ifstream in(dir_ / "penne.log");
        return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    }

    // Reads every JSON line of the objects under out/ (not of a temporary file that is being
    // written: ".NAME.penne-tmp-…", renamed to NAME once durable).
    void read_output() {
        for (auto& l : lines_)
            bson_destroy(l.doc);
        lines_.clear();
        const auto root = std::filesystem::path(std::string(dir_ / "out"));
        if (!std::filesystem::exists(root))
            return;
        for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
            if (!entry.is_regular_file() || entry.path().filename().string().starts_with('.'))
                continue;
            std::ifstream in(entry.path(), std::ios::binary);
            std::string text;
            while (std::getline(in, text)) {
                if (text.empty())
                    continue;
                bson_error_t err;
                bson_t* doc = bson_new_from_json(reinterpret_cast<const std::uint8_t*>(text.data()),
                                                 static_cast<ssize_t>(text.size()), &err);
                ASSERT_NE(doc, nullptr) << entry.path() << ": " << err.message;
                lines_.push_back({doc, text.size()});
            }
        }
    }

    // Waits until the output holds `n` events.
    void wait_for_events(std::size_t n, std::chrono::seconds timeout = 60s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            read_output();
            if (lines_.size() >= n)
                return;
            std::this_thread::sleep_for(200ms);
        }
    }

    temp_dir dir_{"penne-images-e2e"};
    int port_ = 0;
    std::size_t opened_ = 0;
    std::unique_ptr<process> mongosim_;
    mongoc_client_t* client_ = nullptr;
    std::vector<line> lines_;
};

TEST_F(images_e2e, every_update_and_delete_carries_its_before_image) {
    create_with_images("orders");
    write_config("full_document = \"whenAvailable\"\nfull_document_before_change = \"required\"\n");
    auto penne = start_penne();
    constexpr int docs = 40;
    for (int i = 0; i < docs; ++i)
        write("orders", "insert", BCON_NEW("_id", BCON_INT32(i), "v", BCON_INT32(0)));
    for (int i = 0; i < docs; ++i)
        write("orders", "update", BCON_NEW("_id", BCON_INT32(i)),
              BCON_NEW("$set", "{", "v", BCON_INT32(1), "}"));
    for (int i = 0; i < docs; i += 4)
        write("orders", "delete", BCON_NEW("_id", BCON_INT32(i)));
    const std::size_t expected = docs + docs + docs / 4;
    wait_for_events(expected);
    stop_penne(penne);
    read_output();
    ASSERT_EQ(lines_.size(), expected) << penne_log();
    std::map<std::string, int> ops;
    for (const auto& l : lines_) {
        const std::string op = utf8_at(l.doc, "operationType");
        ++ops[op];
        const std::int64_t id = int_at(l.doc, "documentKey._id");
        if (op == "insert") {
            EXPECT_FALSE(has(l.doc, "fullDocumentBeforeChange"));
        } else if (op == "update") {
            EXPECT_EQ(int_at(l.doc, "fullDocumentBeforeChange._id"), id);
            EXPECT_EQ(int_at(l.doc, "fullDocumentBeforeChange.v"), 0);
            EXPECT_EQ(int_at(l.doc, "fullDocument.v"), 1);  // the post-image of this change
        } else if (op == "delete") {
            EXPECT_EQ(int_at(l.doc, "fullDocumentBeforeChange._id"), id);
            EXPECT_EQ(int_at(l.doc, "fullDocumentBeforeChange.v"), 1);
        } else {
            ADD_FAILURE() << "unexpected " << op;
        }
    }
    EXPECT_EQ(ops["insert"], docs);
    EXPECT_EQ(ops["update"], docs);
    EXPECT_EQ(ops["delete"], docs / 4);
}

TEST_F(images_e2e, a_20_mib_event_arrives_whole_exactly_once) {
    create_with_images("big");
    write_config("full_document = \"required\"\nfull_document_before_change = \"whenAvailable\"\n");
    auto penne = start_penne();
    const std::string a(10 * MiB, 'a');
    write("big", "insert", BCON_NEW("_id", BCON_UTF8("x"), "a", BCON_UTF8(a.c_str())));
    write("big", "update", BCON_NEW("_id", BCON_UTF8("x")),
          BCON_NEW("$set", "{", "b", BCON_INT32(1), "}"));
    write("big", "insert", BCON_NEW("_id", BCON_UTF8("after")));
    wait_for_events(3);
    stop_penne(penne);
    // After a restart from the saved watermark the big event is not delivered again.
    penne = start_penne();
    write("big", "insert", BCON_NEW("_id", BCON_UTF8("later")));
    wait_for_events(4);
    stop_penne(penne);
    read_output();
    ASSERT_EQ(lines_.size(), 4u) << penne_log();
    std::map<std::string, std::size_t> by_key;
    for (const auto& l : lines_) {
        EXPECT_FALSE(has(l.doc, "splitEvent")) << "a fragment reached the output";
        by_key[utf8_at(l.doc, "operationType") + ":" + utf8_at(l.doc, "documentKey._id")]++;
        if (utf8_at(l.doc, "operationType") != "update")
            continue;
        EXPECT_GT(l.bytes, 20 * MiB);
        EXPECT_EQ(utf8_at(l.doc, "fullDocument.a").size(), 10 * MiB);
        EXPECT_EQ(int_at(l.doc, "fullDocument.b"), 1);
        EXPECT_EQ(utf8_at(l.doc, "fullDocumentBeforeChange.a").size(), 10 * MiB);
        EXPECT_FALSE(has(l.doc, "fullDocumentBeforeChange.b"));
        EXPECT_EQ(int_at(l.doc, "updateDescription.updatedFields.b"), 1);
        EXPECT_EQ(utf8_at(l.doc, "ns.coll"), "big");
    }
    EXPECT_EQ(by_key["insert:x"], 1u);
    EXPECT_EQ(by_key["update:x"], 1u);
    EXPECT_EQ(by_key["insert:after"], 1u);
    EXPECT_EQ(by_key["insert:later"], 1u);
}

TEST_F(images_e2e, without_split_large_events_the_stream_reports_the_server_error) {
    create_with_images("big");
    write_config(
        "full_document = \"required\"\nfull_document_before_change = \"required\"\n"
        "split_large_events = false\n");
    auto penne = start_penne();
    const std::string a(10 * MiB, 'a');
    write("big", "insert", BCON_NEW("_id", BCON_UTF8("x"), "a", BCON_UTF8(a.c_str())));
    write("big", "update", BCON_NEW("_id", BCON_UTF8("x")),
          BCON_NEW("$set", "{", "b", BCON_INT32(1), "}"));
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    auto reported = [&] {
        const std::string log = penne->log();
        return log.find("BSONObj size") != std::string::npos ||
               log.find("10334") != std::string::npos;
    };
    while (std::chrono::steady_clock::now() < deadline && !reported())
        std::this_thread::sleep_for(100ms);
    EXPECT_TRUE(reported()) << penne->log();
    penne->signal(SIGTERM);
    penne->wait(30s);
}

}  // namespace
}  // namespace penne::test
