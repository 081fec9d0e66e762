#include "oplog.hpp"

#include <algorithm>
#include <chrono>

namespace mongosim {
namespace {

std::uint32_t unix_seconds() {
    return static_cast<std::uint32_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
}

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

bool parse_hex32(std::string_view s, std::uint32_t& out) {
    out = 0;
    for (char c : s) {
        int v = hex_value(c);
        if (v < 0)
            return false;
        out = out << 4 | static_cast<std::uint32_t>(v);
    }
    return true;
}

}  // namespace

cluster_clock::cluster_clock() : last_{unix_seconds(), 0} {}

timestamp cluster_clock::tick() {
    std::uint32_t now = unix_seconds();
    if (now > last_.t) {
        last_ = {now, 1};
    } else if (last_.i == UINT32_MAX) {
        last_ = {last_.t + 1, 1};  // more than 2^32 ticks in a second: borrow the next second
    } else {
        ++last_.i;
    }
    return last_;
}

const char* op_name(op_type op) noexcept {
    switch (op) {
        case op_type::insert:
            return "insert";
        case op_type::update:
            return "update";
        case op_type::replace:
            return "replace";
        case op_type::remove:
            return "delete";
        case op_type::drop:
            return "drop";
        case op_type::rename:
            return "rename";
        case op_type::drop_database:
            return "dropDatabase";
        case op_type::create:
            return "create";
        case op_type::create_indexes:
            return "createIndexes";
        case op_type::drop_indexes:
            return "dropIndexes";
        case op_type::modify:
            return "modify";
    }
    return "unknown";
}

std::string encode_token(timestamp ts, token_kind kind, std::uint32_t fragment) {
    // Formatted by hand: every event of every batch gets a token, and snprintf showed up in
    // the profile of the load mode (--preload) at several percent of the serving time.
    static constexpr char digits[] = "0123456789ABCDEF";
    char buf[24] = {'8', '2'};
    auto put = [&](std::size_t at, std::uint32_t v, int width) {
        for (int k = width - 1; k >= 0; --k, v >>= 4)
            buf[at + static_cast<std::size_t>(k)] = digits[v & 0xF];
    };
    put(2, ts.t, 8);
    put(10, ts.i, 8);
    put(18, static_cast<std::uint32_t>(kind), 2);
    if (fragment == 0)
        return std::string(buf, 20);
    put(20, fragment & 0xFFFF, 4);
    return std::string(buf, 24);
}

bool decode_token(std::string_view hex, token_position& out) {
    if ((hex.size() != 20 && hex.size() != 24) || hex.substr(0, 2) != "82")
        return false;
    out.fragment = 0;
    if (hex.size() == 24 && (!parse_hex32(hex.substr(20, 4), out.fragment) || out.fragment == 0 ||
                             hex.substr(18, 2) != "01"))
        return false;
    std::uint32_t kind;
    if (!parse_hex32(hex.substr(2, 8), out.ts.t) || !parse_hex32(hex.substr(10, 8), out.ts.i) ||
        !parse_hex32(hex.substr(18, 2), kind))
        return false;
    if (kind < 1 || kind > 3)
        return false;
    out.kind = static_cast<token_kind>(kind);
    return true;
}

void append_token(bson_t* out, const char* key, timestamp ts, token_kind kind,
                  std::uint32_t fragment) {
    bson_t tok;
    bson_append_document_begin(out, key, -1, &tok);
    std::string data = encode_token(ts, kind, fragment);
    bson_append_utf8(&tok, "_data", 5, data.data(), static_cast<int>(data.size()));
    bson_append_document_end(out, &tok);
}

timestamp oplog::append(event_record e) {
    e.ts = clock_.tick();
    e.wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
    entries_.push_back(std::move(e));
    if (cap_ != 0 && entries_.size() > cap_) {
        truncated_ = entries_.front().ts;
        entries_.pop_front();
        ++first_seq_;
    }
    return entries_.back().ts;
}

std::optional<timestamp> oplog::last_ts() const {
    if (entries_.empty())
        return truncated_;
    return entries_.back().ts;
}

std::uint64_t oplog::seq_after(timestamp ts) const {
    auto it = std::upper_bound(entries_.begin(), entries_.end(), ts,
                               [](timestamp t, const event_record& e) { return t < e.ts; });
    return first_seq_ + static_cast<std::uint64_t>(it - entries_.begin());
}

std::uint64_t oplog::seq_at_or_after(timestamp ts) const {
    auto it = std::lower_bound(entries_.begin(), entries_.end(), ts,
                               [](const event_record& e, timestamp t) { return e.ts < t; });
    return first_seq_ + static_cast<std::uint64_t>(it - entries_.begin());
}

std::optional<std::uint64_t> oplog::seq_of(timestamp ts) const {
    std::uint64_t s = seq_at_or_after(ts);
    if (s < end_seq() && at(s).ts == ts)
        return s;
    return std::nullopt;
}

}  // namespace mongosim
