// An Asio application embedding penne, built by penne's test suite against the installed
// package and through add_subdirectory. It runs a pipeline on its own io_context (one
// thread), waits until it is ready, inserts documents with the MongoDB C driver, waits
// until penne made them durable in a local directory, stops the pipeline by cancelling
// async_run, and checks the objects: every document exactly once.
//
//   penne_consumer <mongodb uri> <output directory>
//
// Exit status 0 when everything checked out; 1 with a message otherwise.

#include <penne/config.hpp>
#include <penne/pipeline.hpp>
#include <penne/version.hpp>

#include <mongoc/mongoc.h>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/system/system_error.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <thread>

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

int fail(const std::string& what) {
    std::fprintf(stderr, "penne_consumer: %s\n", what.c_str());
    return 1;
}

template <class Pred>
bool wait_for(Pred pred, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline)
            return false;
        std::this_thread::sleep_for(50ms);
    }
    return true;
}

bool insert_documents(const std::string& uri, int count, std::string& error) {
    mongoc_init();
    mongoc_client_t* client = mongoc_client_new(uri.c_str());
    if (client == nullptr) {
        error = "bad MongoDB URI";
        return false;
    }
    mongoc_collection_t* coll = mongoc_client_get_collection(client, "shop", "orders");
    bool ok = true;
    for (int i = 0; i < count && ok; ++i) {
        bson_t* doc =
            BCON_NEW("_id", BCON_INT32(i), "item", BCON_UTF8("penne"), "qty", BCON_INT32(i));
        bson_error_t err;
        ok = mongoc_collection_insert_one(coll, doc, nullptr, nullptr, &err);
        if (!ok)
            error = err.message;
        bson_destroy(doc);
    }
    mongoc_collection_destroy(coll);
    mongoc_client_destroy(client);
    mongoc_cleanup();
    return ok;
}

// The `"_id":{"$numberInt"…}` or `"_id":N` of every documentKey written, one per line.
std::multiset<std::string> written_ids(const std::filesystem::path& dir) {
    std::multiset<std::string> ids;
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
        if (!e.is_regular_file() || e.path().extension() != ".jsonl")
            continue;
        std::ifstream in(e.path());
        std::string line;
        while (std::getline(in, line)) {
            // Relaxed Extended JSON as penne writes it, spacing aside.
            std::erase(line, ' ');
            constexpr std::string_view key = "\"documentKey\":{\"_id\":";
            const auto at = line.find(key);
            if (at == std::string::npos)
                continue;
            const auto from = at + key.size();
            ids.insert(line.substr(from, line.find('}', from) - from));
        }
    }
    return ids;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3)
        return fail("usage: penne_consumer <mongodb uri> <output directory>");
    const std::string uri = argv[1];
    const std::filesystem::path out = argv[2];
    constexpr int documents = 25;

    const std::string toml = "[mongodb]\nuri = \"" + uri +
                             "\"\nmax_await_ms = 100\n"
                             "[[watch]]\nlevel = \"collection\"\ndatabase = \"shop\"\n"
                             "collections = [\"orders\"]\n"
                             "[batch]\nmax_events = 10\nmax_age_ms = 200\n"
                             "[output]\nformat = \"jsonl\"\ncompression = \"none\"\n"
                             "[destination]\ntype = \"local\"\npath = \"" +
                             out.string() +
                             "\"\n"
                             "[state]\ntype = \"memory\"\n";
    penne::config cfg;
    std::string error;
    if (!penne::parse_config(toml, "consumer.toml", {}, cfg, error))
        return fail("configuration: " + error);

    asio::io_context ctx;
    penne::pipeline pipe(ctx.get_executor(), cfg);
    asio::cancellation_signal stop;
    auto done = pipe.async_run(asio::bind_cancellation_slot(stop.slot(), asio::use_future));
    std::thread runner([&ctx] { ctx.run(); });

    std::string reason;
    const bool ready = wait_for([&] { return pipe.ready(reason); }, 30s);
    bool inserted = false;
    if (ready)
        inserted = insert_documents(uri, documents, error);
    const bool durable =
        inserted && wait_for([&] { return pipe.stats().events_written.load() == documents; }, 30s);

    asio::post(ctx, [&stop] { stop.emit(asio::cancellation_type::terminal); });
    // With use_future, an error completion becomes an exception from get().
    penne::error_code ec;
    try {
        done.get();
    } catch (const boost::system::system_error& e) {
        ec = e.code();
    }
    runner.join();

    std::printf("penne %s: ready=%d inserted=%d durable=%d events_written=%llu\n",
                PENNE_VERSION_STRING, ready, inserted, durable,
                static_cast<unsigned long long>(pipe.stats().events_written.load()));
    if (!ready)
        return fail("the pipeline never became ready: " + reason);
    if (!inserted)
        return fail("inserting into MongoDB failed: " + error);
    if (ec)
        return fail("async_run completed with " + ec.message() + ": " +
                    pipe.last_diagnostics().message);
    if (!durable)
        return fail("not every event became durable");
    const auto ids = written_ids(out);
    if (ids.size() != documents)
        return fail("found " + std::to_string(ids.size()) + " events in " + out.string() +
                    ", expected " + std::to_string(documents));
    for (int i = 0; i < documents; ++i) {
        if (ids.count(std::to_string(i)) != 1)
            return fail("document " + std::to_string(i) + " is not written exactly once");
    }
    std::printf("every document written exactly once\n");
    return 0;
}
