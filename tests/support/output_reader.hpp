#pragma once
// Reads back everything penne wrote to a local-directory destination: every object is
// decompressed and every JSON line parsed, independently of the engine's own bookkeeping.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace penne::test {

struct written_event {
    std::string object;  // key of the object holding it
    std::string operation;
    std::string db;
    std::string coll;
    std::string token;    // _id._data
    std::int64_t n = -1;  // fullDocument.n for inserts (the test's sequence number)
    // JSON lines only: documentKey._id (an ObjectId in hex, an integer in decimal, or a
    // string), to tie updates and deletes to the insert of the same document, and
    // updateDescription.updatedFields.v (a test's per-document update counter) or -1.
    std::string key;
    std::int64_t version = -1;
};

struct output_scan {
    std::vector<written_event> events;
    std::size_t objects = 0;
    std::vector<std::string> errors;  // unreadable objects or lines
};

output_scan scan_output(const std::string& root);

}  // namespace penne::test
