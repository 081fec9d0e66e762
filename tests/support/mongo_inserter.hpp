#pragma once
// Writes test documents into mongosim (or any MongoDB) through the C driver, for the
// end-to-end tests: documents {n, coll, payload} where n is a sequence number the tests
// look for, exactly once, in the output.

#include <mongoc/mongoc.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace penne::test {

// Initialises the C driver once per test binary (register with
// ::testing::AddGlobalTestEnvironment).
class mongoc_env : public ::testing::Environment {
public:
    void SetUp() override { mongoc_init(); }
    void TearDown() override { mongoc_cleanup(); }
};

// Inserts documents {n, coll, payload} through the C driver.
class inserter {
public:
    explicit inserter(int port) {
        const std::string uri =
            "mongodb://127.0.0.1:" + std::to_string(port) + "/?directConnection=true";
        client_ = mongoc_client_new(uri.c_str());
    }
    ~inserter() { mongoc_client_destroy(client_); }

    // Inserts documents first..last-1, round-robin over the collections, in chunks.
    void insert(const std::string& db, const std::vector<std::string>& colls, std::int64_t first,
                std::int64_t last, std::int64_t chunk = 100) {
        for (std::int64_t base = first; base < last; base += chunk) {
            for (const auto& c : colls) {
                mongoc_collection_t* coll =
                    mongoc_client_get_collection(client_, db.c_str(), c.c_str());
                mongoc_bulk_operation_t* bulk =
                    mongoc_collection_create_bulk_operation_with_opts(coll, nullptr);
                bool any = false;
                for (std::int64_t n = base; n < std::min(last, base + chunk); ++n) {
                    if (colls[static_cast<std::size_t>(n) % colls.size()] != c)
                        continue;
                    bson_t* d = bson_new();
                    BSON_APPEND_INT64(d, "n", n);
                    BSON_APPEND_UTF8(d, "coll", c.c_str());
                    BSON_APPEND_UTF8(d, "payload", "the quick brown fox jumps over the lazy dog");
                    mongoc_bulk_operation_insert(bulk, d);
                    bson_destroy(d);
                    any = true;
                }
                bson_error_t err;
                bool ok = !any || mongoc_bulk_operation_execute(bulk, nullptr, &err) != 0;
                mongoc_bulk_operation_destroy(bulk);
                mongoc_collection_destroy(coll);
                if (!ok)
                    throw std::runtime_error(std::string("insert failed: ") + err.message);
            }
        }
    }

private:
    mongoc_client_t* client_;
};

}  // namespace penne::test
