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

std::string encode_token(timestamp ts, token_kind kind, std::uint32_t fragment,
                         std::optional<std::uint32_t> txn_index) {
    // Formatted by hand: every event of every batch gets a token, and snprintf showed up in
    // the profile of the load mode (--preload) at several percent of the serving time.
    static constexpr char digits[] = "0123456789ABCDEF";
    char buf[32] = {'8', '2'};
    auto put = [&](std::size_t at, std::uint32_t v, int width) {
        for (int k = width - 1; k >= 0; --k, v >>= 4)
            buf[at + static_cast<std::size_t>(k)] = digits[v & 0xF];
    };
    put(2, ts.t, 8);
    put(10, ts.i, 8);
    put(18, static_cast<std::uint32_t>(kind), 2);
    std::size_t len = 20;
    if (txn_index) {
        put(len, *txn_index, 8);
        len += 8;
    }
    if (fragment != 0) {
        put(len, fragment & 0xFFFF, 4);
        len += 4;
    }
    return std::string(buf, len);
}

std::string encode_token(const token_position& pos) {
    return encode_token(pos.ts, pos.kind, pos.fragment, pos.txn_index);
}

bool decode_token(std::string_view hex, token_position& out) {
    // 20 hex digits: an event, invalidate or high-water mark; 24: a fragment of an event;
    // 28: an operation of a transaction; 32: a fragment of one.
    if ((hex.size() != 20 && hex.size() != 24 && hex.size() != 28 && hex.size() != 32) ||
        hex.substr(0, 2) != "82")
        return false;
    std::uint32_t kind;
    if (!parse_hex32(hex.substr(2, 8), out.ts.t) || !parse_hex32(hex.substr(10, 8), out.ts.i) ||
        !parse_hex32(hex.substr(18, 2), kind))
        return false;
    if (kind < 1 || kind > 3)
        return false;
    out.kind = static_cast<token_kind>(kind);
    out.fragment = 0;
    out.txn_index.reset();
    if (hex.size() > 20 && out.kind != token_kind::event)
        return false;
    if (hex.size() >= 28) {
        std::uint32_t index;
        if (!parse_hex32(hex.substr(20, 8), index))
            return false;
        out.txn_index = index;
    }
    if (hex.size() == 24 || hex.size() == 32) {
        if (!parse_hex32(hex.substr(hex.size() - 4), out.fragment) || out.fragment == 0)
            return false;
    }
    return true;
}

void append_token(bson_t* out, const char* key, timestamp ts, token_kind kind,
                  std::uint32_t fragment) {
    append_token(out, key, token_position{ts, kind, fragment, std::nullopt});
}

void append_token(bson_t* out, const char* key, const token_position& pos) {
    bson_t tok;
    bson_append_document_begin(out, key, -1, &tok);
    std::string data = encode_token(pos);
    bson_append_utf8(&tok, "_data", 5, data.data(), static_cast<int>(data.size()));
    bson_append_document_end(out, &tok);
}

token_position event_position(const event_record& e, std::uint32_t fragment) {
    token_position pos{e.ts, token_kind::event, fragment, std::nullopt};
    if (e.in_transaction())
        pos.txn_index = e.txn_index;
    return pos;
}

token_position position_after(const event_record& e) {
    if (e.in_transaction() && e.txn_index + 1 < e.txn_ops)
        return event_position(e);
    return token_position{e.ts, token_kind::high_water, 0, std::nullopt};
}

namespace {

std::size_t doc_bytes(const bson_t* d) {
    return d != nullptr ? d->len : 0;
}

// The BSON size of an oplog entry, as mongod would store it: its documents plus the fixed
// fields (op, ns, ui, ts, t, v, wall, and lsid/txnNumber for a transaction's operations).
std::size_t entry_bytes(const event_record& e) {
    std::size_t n = 64 + e.db.size() + e.coll.size() + e.to_db.size() + e.to_coll.size();
    n += doc_bytes(e.document_key.get()) + doc_bytes(e.full_document.get()) +
         doc_bytes(e.update_description.get()) + doc_bytes(e.pre_image.get()) +
         doc_bytes(e.post_image.get()) + doc_bytes(e.operation_description.get()) +
         doc_bytes(e.state_before_change.get());
    if (e.uuid)
        n += 24;
    if (e.in_transaction())
        n += doc_bytes(e.lsid.get()) + 24;
    return n;
}

std::int64_t wall_now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace

void oplog::push(event_record e) {
    const std::size_t n = entry_bytes(e);
    bytes_ += n;
    sizes_.push_back(n);
    entries_.push_back(std::move(e));
}

void oplog::trim() {
    auto over = [&] {
        return (cap_ != 0 && entries_.size() > cap_) || (cap_bytes_ != 0 && bytes_ > cap_bytes_);
    };
    // A transaction's operations share one timestamp and leave together, as its applyOps
    // entry would; the newest entry (or transaction) always stays.
    while (over() && entries_.front().ts != entries_.back().ts) {
        const timestamp ts = entries_.front().ts;
        while (entries_.front().ts == ts) {
            bytes_ -= sizes_.front();
            sizes_.pop_front();
            entries_.pop_front();
            ++first_seq_;
        }
        truncated_ = ts;
    }
}

timestamp oplog::append(event_record e) {
    e.ts = clock_.tick();
    e.wall_ms = wall_now_ms();
    push(std::move(e));
    trim();
    return entries_.back().ts;
}

timestamp oplog::append_transaction(std::vector<event_record> ops) {
    if (ops.empty())
        return clock_.now();
    const timestamp ts = clock_.tick();
    const std::int64_t wall = wall_now_ms();
    const auto count = static_cast<std::uint32_t>(ops.size());
    for (std::uint32_t k = 0; k < count; ++k) {
        event_record& e = ops[k];
        e.ts = ts;
        e.wall_ms = wall;
        e.txn_index = k;
        e.txn_ops = count;
        push(std::move(e));
    }
    trim();
    return ts;
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

std::optional<std::uint64_t> oplog::seq_of(timestamp ts,
                                           std::optional<std::uint32_t> txn_index) const {
    auto first = seq_of(ts);
    if (!first)
        return std::nullopt;
    const event_record& e = at(*first);
    if (!txn_index)
        return e.in_transaction() ? std::nullopt : first;
    if (!e.in_transaction() || *txn_index >= e.txn_ops)
        return std::nullopt;
    return *first + *txn_index;
}

}  // namespace mongosim
