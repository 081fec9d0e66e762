// penne-loadgen: a change workload for demos and benchmarks, and an independent check of
// penne's output.
//
//   penne-loadgen write --uri mongodb://127.0.0.1:27017 --db demo --collections 5
//                       [--databases 1] --ops 20000 [--mix 70/25/5] [--doc-bytes 800]
//                       [--rate 0]
//   penne-loadgen verify --dir ./penne-out --expect-events 20000
//
// write: inserts, updates ($set on existing documents) and deletes in the given mix, in
// ordered bulk writes of --batch operations, each bulk write going to one collection,
// round-robin over every (database, collection) pair; prints the number of change events
// it caused and the achieved rate in operations per second.
//
// Databases: --databases M writes into M databases named after --db: the first is the
// --db value itself, the others get a suffix, so --db demo --databases 3 writes into
// demo, demo_1 and demo_2 (M = 1 is exactly the single-database workload). Each database
// holds the same collections coll0 .. coll<N-1>. The round-robin visits the databases
// first, then the collections ((demo, coll0), (demo_1, coll0), (demo, coll1), ...), so
// every database receives writes from the first bulk writes on; every pair is written
// once --ops reaches --batch x M x N. Document _ids are unique across all databases.
//
// verify: decodes every object under the directory (whatever databases and collections
// they came from), checks that every event appears once (no token twice) and that the
// count matches.

#include <mongoc/mongoc.h>

#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "output_reader.hpp"

namespace {

struct write_options {
    std::string uri = "mongodb://127.0.0.1:27017/?directConnection=true";
    std::string db = "demo";
    int collections = 5;
    int databases = 1;
    std::int64_t ops = 20'000;
    std::string mix = "70/25/5";
    int doc_bytes = 800;
    double rate = 0;  // ops/s, 0 = as fast as possible
    std::uint64_t seed = 1;
    int batch = 500;
};

int do_write(const write_options& o) {
    int ins_pct = 70, upd_pct = 25, del_pct = 5;
    if (std::sscanf(o.mix.c_str(), "%d/%d/%d", &ins_pct, &upd_pct, &del_pct) != 3 ||
        ins_pct + upd_pct + del_pct != 100 || ins_pct <= 0) {
        std::fprintf(stderr, "--mix must be three percentages adding to 100, e.g. 70/25/5\n");
        return 2;
    }
    if (static_cast<std::int64_t>(o.databases) * o.collections > 1'000'000) {
        std::fprintf(stderr, "--databases x --collections must be at most 1000000\n");
        return 2;
    }
    mongoc_init();
    bson_error_t err;
    mongoc_uri_t* uri = mongoc_uri_new_with_error(o.uri.c_str(), &err);
    if (!uri) {
        std::fprintf(stderr, "bad --uri: %s\n", err.message);
        return 2;
    }
    mongoc_client_t* client = mongoc_client_new_from_uri(uri);
    mongoc_client_set_appname(client, "penne-loadgen");

    std::mt19937_64 rng(o.seed);
    // The database names: the --db value, then <db>_1, <db>_2, ...
    std::vector<std::string> db_names;
    for (int d = 0; d < o.databases; ++d)
        db_names.push_back(d == 0 ? o.db : o.db + "_" + std::to_string(d));
    const std::int64_t pairs = static_cast<std::int64_t>(o.databases) * o.collections;
    // live ids per (database, collection) pair, indexed db_no * collections + coll_no.
    std::vector<std::vector<std::int64_t>> live(static_cast<std::size_t>(pairs));
    std::vector<std::int64_t> ops_per_db(static_cast<std::size_t>(o.databases), 0);
    std::int64_t next_id = 0, inserts = 0, updates = 0, deletes = 0;
    const std::string filler(static_cast<std::size_t>(std::max(0, o.doc_bytes - 200)), 'x');
    const auto start = std::chrono::steady_clock::now();
    auto last_report = start;

    std::int64_t chunk = 0;
    for (std::int64_t done = 0; done < o.ops; ++chunk) {
        // Databases vary fastest; with one database this is chunk % collections as before.
        const std::int64_t pair = chunk % pairs;
        const int db_no = static_cast<int>(pair % o.databases);
        const int coll_no = static_cast<int>(pair / o.databases);
        const std::string coll_name = "coll" + std::to_string(coll_no);
        const std::string& db_name = db_names[static_cast<std::size_t>(db_no)];
        mongoc_collection_t* coll =
            mongoc_client_get_collection(client, db_name.c_str(), coll_name.c_str());
        mongoc_bulk_operation_t* bulk =
            mongoc_collection_create_bulk_operation_with_opts(coll, nullptr);
        auto& ids = live[static_cast<std::size_t>(db_no * o.collections + coll_no)];
        std::int64_t n = std::min<std::int64_t>(o.batch, o.ops - done);
        ops_per_db[static_cast<std::size_t>(db_no)] += n;
        for (std::int64_t i = 0; i < n; ++i) {
            int roll = static_cast<int>(rng() % 100);
            if (ids.empty() || roll < ins_pct) {
                bson_t* d = bson_new();
                BSON_APPEND_INT64(d, "_id", next_id);
                BSON_APPEND_INT64(d, "n", next_id);
                BSON_APPEND_UTF8(d, "customer", "customer-4711");
                BSON_APPEND_DOUBLE(d, "amount", static_cast<double>(rng() % 100000) / 100);
                BSON_APPEND_DATE_TIME(d, "created", 1'700'000'000'000);
                BSON_APPEND_UTF8(d, "notes", filler.c_str());
                mongoc_bulk_operation_insert(bulk, d);
                bson_destroy(d);
                ids.push_back(next_id++);
                ++inserts;
            } else if (roll < ins_pct + upd_pct) {
                auto id = ids[rng() % ids.size()];
                bson_t* sel = BCON_NEW("_id", BCON_INT64(id));
                // $inc makes every update a real change: MongoDB (and mongosim) emit no
                // event for an update that leaves the document as it was.
                bson_t* upd = BCON_NEW("$set", "{", "status", BCON_UTF8("shipped"), "amount",
                                       BCON_DOUBLE(static_cast<double>(rng() % 1000)), "}", "$inc",
                                       "{", "version", BCON_INT32(1), "}");
                mongoc_bulk_operation_update_one(bulk, sel, upd, false);
                bson_destroy(sel);
                bson_destroy(upd);
                ++updates;
            } else {
                auto pos = rng() % ids.size();
                bson_t* sel = BCON_NEW("_id", BCON_INT64(ids[pos]));
                ids[pos] = ids.back();
                ids.pop_back();
                mongoc_bulk_operation_remove_one(bulk, sel);
                bson_destroy(sel);
                ++deletes;
            }
        }
        bson_t reply;
        bool ok = mongoc_bulk_operation_execute(bulk, &reply, &err) != 0;
        bson_destroy(&reply);
        mongoc_bulk_operation_destroy(bulk);
        mongoc_collection_destroy(coll);
        if (!ok) {
            std::fprintf(stderr, "write failed: %s\n", err.message);
            return 1;
        }
        done += n;
        const auto now = std::chrono::steady_clock::now();
        if (o.rate > 0) {
            auto due = start + std::chrono::duration<double>(static_cast<double>(done) / o.rate);
            if (due > now)
                std::this_thread::sleep_until(due);
        }
        if (now - last_report > std::chrono::seconds(1) || done == o.ops) {
            last_report = now;
            std::printf("loadgen: %lld/%lld operations written\n", static_cast<long long>(done),
                        static_cast<long long>(o.ops));
            std::fflush(stdout);
        }
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // scripts/demo.sh greps "events=<n>" from this line: keep that token as it is.
    std::printf("loadgen: %lld inserts, %lld updates, %lld deletes in %.1f s; events=%lld\n",
                static_cast<long long>(inserts), static_cast<long long>(updates),
                static_cast<long long>(deletes), secs,
                static_cast<long long>(inserts + updates + deletes));
    if (o.databases > 1) {
        for (int d = 0; d < o.databases; ++d)
            std::printf("loadgen: database %s: %lld operations over %d collections\n",
                        db_names[static_cast<std::size_t>(d)].c_str(),
                        static_cast<long long>(ops_per_db[static_cast<std::size_t>(d)]),
                        o.collections);
    }
    const std::int64_t total = inserts + updates + deletes;
    if (o.rate > 0)
        std::printf("loadgen: achieved %.1f ops/s (target %.1f ops/s)\n",
                    secs > 0 ? static_cast<double>(total) / secs : 0.0, o.rate);
    else
        std::printf("loadgen: achieved %.1f ops/s (unthrottled)\n",
                    secs > 0 ? static_cast<double>(total) / secs : 0.0);
    mongoc_client_destroy(client);
    mongoc_uri_destroy(uri);
    mongoc_cleanup();
    return 0;
}

int do_verify(const std::string& dir, std::int64_t expect) {
    auto scan = penne::test::scan_output(dir);
    std::set<std::string> tokens;
    std::map<std::string, std::int64_t> by_op;
    std::int64_t dup = 0;
    for (auto& e : scan.events) {
        if (!tokens.insert(e.token).second)
            ++dup;
        ++by_op[e.operation];
    }
    std::printf("verify: %zu objects, %zu events (", scan.objects, scan.events.size());
    bool first = true;
    for (auto& [op, n] : by_op) {
        std::printf("%s%s %lld", first ? "" : ", ", op.c_str(), static_cast<long long>(n));
        first = false;
    }
    std::printf(")\n");
    for (auto& e : scan.errors)
        std::printf("verify: error: %s\n", e.c_str());
    bool ok = scan.errors.empty() && dup == 0;
    if (dup)
        std::printf("verify: %lld events appear more than once\n", static_cast<long long>(dup));
    if (expect >= 0 && static_cast<std::int64_t>(tokens.size()) != expect) {
        std::printf("verify: expected %lld distinct events, found %zu\n",
                    static_cast<long long>(expect), tokens.size());
        ok = false;
    }
    std::printf(ok ? "verify: OK, every event exactly once\n" : "verify: FAILED\n");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"penne-loadgen: change workload generator and output verifier"};
    app.require_subcommand(1);
    write_options w;
    auto* write = app.add_subcommand("write", "Write a change workload through the C driver");
    write->add_option("--uri", w.uri, "MongoDB URI");
    write->add_option("--db", w.db, "Database (the first one; see --databases)");
    write
        ->add_option("--collections", w.collections,
                     "Number of collections per database (coll0 .. coll<N-1>)")
        ->check(CLI::Range(1, 100000));
    write
        ->add_option("--databases", w.databases,
                     "Number of databases: the --db value, then <db>_1, <db>_2, ... "
                     "(e.g. demo, demo_1, demo_2); bulk writes go round-robin over every "
                     "(database, collection) pair, databases first")
        ->check(CLI::Range(1, 10000));
    write->add_option("--ops", w.ops, "Number of operations")
        ->check(CLI::Range(1LL, 1'000'000'000LL));
    write->add_option("--mix", w.mix, "insert/update/delete percentages");
    write->add_option("--doc-bytes", w.doc_bytes, "Approximate document size");
    write->add_option("--rate", w.rate, "Operations per second (0: unlimited)");
    write->add_option("--seed", w.seed, "Random seed");
    write->add_option("--batch", w.batch, "Operations per bulk write")
        ->check(CLI::Range(1, 100000));
    std::string dir;
    std::int64_t expect = -1;
    auto* verify = app.add_subcommand("verify", "Check a local-directory destination");
    verify->add_option("--dir", dir, "Destination directory")->required();
    verify->add_option("--expect-events", expect, "Expected number of distinct events");
    CLI11_PARSE(app, argc, argv);
    if (write->parsed())
        return do_write(w);
    return do_verify(dir, expect);
}
