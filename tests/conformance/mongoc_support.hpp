#pragma once
// What the libmongoc-based conformance tests share: the driver's global initialisation as a
// GoogleTest environment, owning pointers for the driver's handles, and BSON <-> JSON
// helpers. Header-only; include it inside one test binary's sources as often as needed
// (registering mongoc_environment twice is harmless: mongoc_init is idempotent).

#include <mongoc/mongoc.h>
#include <mongosim/bson.hpp>

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace mongosim_test {

using mongosim::bson_ptr;

class mongoc_environment : public ::testing::Environment {
public:
    void SetUp() override { mongoc_init(); }
    void TearDown() override { mongoc_cleanup(); }
};

struct client_deleter {
    void operator()(mongoc_client_t* c) const { mongoc_client_destroy(c); }
};
struct coll_deleter {
    void operator()(mongoc_collection_t* c) const { mongoc_collection_destroy(c); }
};
struct db_deleter {
    void operator()(mongoc_database_t* d) const { mongoc_database_destroy(d); }
};
struct stream_deleter {
    void operator()(mongoc_change_stream_t* c) const { mongoc_change_stream_destroy(c); }
};
struct session_deleter {
    void operator()(mongoc_client_session_t* s) const { mongoc_client_session_destroy(s); }
};
struct cursor_deleter {
    void operator()(mongoc_cursor_t* c) const { mongoc_cursor_destroy(c); }
};
using client_ptr = std::unique_ptr<mongoc_client_t, client_deleter>;
using coll_ptr = std::unique_ptr<mongoc_collection_t, coll_deleter>;
using db_ptr = std::unique_ptr<mongoc_database_t, db_deleter>;
using stream_ptr = std::unique_ptr<mongoc_change_stream_t, stream_deleter>;
using session_ptr = std::unique_ptr<mongoc_client_session_t, session_deleter>;
using cursor_ptr = std::unique_ptr<mongoc_cursor_t, cursor_deleter>;

// Extended JSON to BSON; a parse error fails the test (and yields an empty document).
inline bson_ptr json(const std::string& text) {
    bson_error_t err;
    bson_t* b = bson_new_from_json(reinterpret_cast<const std::uint8_t*>(text.data()),
                                   static_cast<ssize_t>(text.size()), &err);
    EXPECT_NE(b, nullptr) << err.message << " in " << text;
    return bson_ptr(b ? b : bson_new());
}

// Relaxed Extended JSON of a document, for assertions and failure messages.
inline std::string relaxed(const bson_t* b) {
    char* s = bson_as_relaxed_extended_json(b, nullptr);
    std::string out = s != nullptr ? s : "";
    bson_free(s);
    return out;
}

}  // namespace mongosim_test
