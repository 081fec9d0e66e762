#pragma once
// A change event as the engine sees it: a set of views into the BSON that MongoDB sent.
// Nothing here owns memory; a change_event is valid only as long as the buffer it was
// parsed from (the getMore reply held by the source's event_batch). The engine encodes an
// event while it is valid and keeps only its resume token (copied) when it must.
//
// resume_token is the owned form of a token: the raw BSON document of an event's `_id`
// or of a reply's `postBatchResumeToken`, compared byte for byte.

#include <algorithm>
#include <compare>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace penne {

using byte_view = std::span<const std::uint8_t>;

// MongoDB's clusterTime: seconds since the epoch and an ordinal within the second.
struct cluster_time {
    std::uint32_t seconds = 0;
    std::uint32_t increment = 0;
    friend auto operator<=>(const cluster_time&, const cluster_time&) = default;
};

class resume_token {
public:
    resume_token() = default;
    explicit resume_token(byte_view bson) : bson_(bson.begin(), bson.end()) {}

    bool empty() const noexcept { return bson_.empty(); }
    byte_view bytes() const noexcept { return {bson_.data(), bson_.size()}; }
    void assign(byte_view bson) { bson_.assign(bson.begin(), bson.end()); }
    void clear() noexcept { bson_.clear(); }

    // Lower-case hex of the BSON bytes: the form stored in state files and Redis.
    std::string to_hex() const;
    // Returns false (and leaves *this empty) when `hex` is not an even-length hex string
    // of a plausible BSON document.
    bool assign_hex(std::string_view hex);
    // A short stable digest for object keys: hex of the first 8 bytes of SHA-256.
    std::string short_hash() const;

    friend bool operator==(const resume_token&, const resume_token&) = default;

private:
    std::vector<std::uint8_t> bson_;
};

struct change_event {
    byte_view raw;                   // the whole event document as MongoDB sent it
    byte_view token;                 // the `_id` document (a sub-span of raw)
    std::string_view operation;      // operationType: "insert", "update", "dropDatabase", …
    std::string_view db;             // ns.db
    std::string_view coll;           // ns.coll; empty for database/deployment-wide events
    cluster_time time;               // clusterTime
    std::int64_t wall_time_ms = -1;  // wallTime in ms since the epoch, -1 when absent

    bool token_equals(const resume_token& t) const noexcept {
        auto b = t.bytes();
        return b.size() == token.size() && std::equal(b.begin(), b.end(), token.begin());
    }
};

}  // namespace penne
