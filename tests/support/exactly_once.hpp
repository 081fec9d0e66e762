#pragma once
// The end-to-end tests' verdict on decoded output (output_reader.hpp): every inserted test
// document n in [0, count) appears exactly once, and no change event (by resume token) is
// in two places. GoogleTest assertions, so failures say how many are missing or doubled.

#include "output_reader.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <set>
#include <string>

namespace penne::test {

// Distinct test documents (fullDocument.n of inserts) in the output.
inline std::size_t distinct_inserts(const output_scan& scan) {
    std::set<std::int64_t> seen;
    for (const auto& e : scan.events)
        if (e.operation == "insert")
            seen.insert(e.n);
    return seen.size();
}

// `db`: when not empty, every insert must come from that database.
inline void expect_exactly_once(const output_scan& scan, std::int64_t count,
                                const std::string& db = {}) {
    EXPECT_TRUE(scan.errors.empty()) << scan.errors.front();
    std::map<std::int64_t, int> seen;
    std::set<std::string> tokens;
    std::size_t duplicate_tokens = 0;
    for (const auto& e : scan.events) {
        if (!tokens.insert(e.token).second)
            ++duplicate_tokens;
        if (e.operation != "insert")
            continue;
        if (!db.empty()) {
            EXPECT_EQ(e.db, db);
        }
        ++seen[e.n];
    }
    EXPECT_EQ(duplicate_tokens, 0u) << "change events written more than once";
    std::int64_t missing = 0, doubled = 0;
    for (std::int64_t n = 0; n < count; ++n) {
        auto it = seen.find(n);
        if (it == seen.end())
            ++missing;
        else if (it->second > 1)
            ++doubled;
    }
    EXPECT_EQ(missing, 0) << "inserted documents missing from the output";
    EXPECT_EQ(doubled, 0) << "documents written more than once";
}

}  // namespace penne::test
