#include "detail/journal.hpp"

#include <array>
#include <cstring>
#include <unordered_set>

namespace penne::file::detail {
namespace {

constexpr char magic[8] = {'P', 'N', 'J', 'R', 'N', 'L', '\r', '\n'};

enum tag : std::uint8_t { snapshot_tag = 1, record_tag = 2, commit_tag = 3 };

constexpr std::array<std::uint32_t, 256> make_crc_table() {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
        std::uint32_t c = i;
        for (int k = 0; k < 8; ++k)
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;  // Castagnoli, reflected
        t[i] = c;
    }
    return t;
}
constexpr auto crc_table = make_crc_table();

void put_u8(std::string& out, std::uint8_t v) {
    out.push_back(static_cast<char>(v));
}
void put_u32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        out.push_back(static_cast<char>(v >> (8 * i)));
}
void put_u64(std::string& out, std::uint64_t v) {
    for (int i = 0; i < 8; ++i)
        out.push_back(static_cast<char>(v >> (8 * i)));
}
void poke_u32(std::string& out, std::size_t at, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        out[at + static_cast<std::size_t>(i)] = static_cast<char>(v >> (8 * i));
}
void put_bytes(std::string& out, const void* p, std::size_t n) {
    put_u32(out, static_cast<std::uint32_t>(n));
    out.append(static_cast<const char*>(p), n);
}
void put_str(std::string& out, std::string_view s) {
    put_bytes(out, s.data(), s.size());
}
void put_token(std::string& out, const resume_token& t) {
    auto b = t.bytes();
    put_bytes(out, b.data(), b.size());
}

std::uint32_t get_u32(std::string_view s, std::size_t at) noexcept {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
        v |= std::uint32_t(static_cast<unsigned char>(s[at + std::size_t(i)])) << (8 * i);
    return v;
}
std::uint64_t get_u64(std::string_view s, std::size_t at) noexcept {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v |= std::uint64_t(static_cast<unsigned char>(s[at + std::size_t(i)])) << (8 * i);
    return v;
}

std::size_t entry_size(const manifest_entry& e) noexcept {
    return 8 + 4 + e.key.size() + 4 + e.db.size() + 4 + e.coll.size() + 4 + e.first.bytes().size() +
           4 + e.last.bytes().size() + 8 + 1;
}

void put_entry(std::string& out, const manifest_entry& e) {
    put_u64(out, e.seq);
    put_str(out, e.key);
    put_str(out, e.db);
    put_str(out, e.coll);
    put_token(out, e.first);
    put_token(out, e.last);
    put_u64(out, e.count);
    put_u8(out, e.durable ? 1 : 0);
}

// Bounds-checked reading of one frame's payload; every failure names what was being read.
struct cursor {
    std::string_view data;
    std::size_t pos = 0;
    std::string why;

    bool fail(std::string reason) {
        why = std::move(reason);
        return false;
    }
    bool need(std::size_t n, const char* what) {
        if (data.size() - pos < n)
            return fail(std::string("the frame ends inside ") + what);
        return true;
    }
    bool u8(std::uint8_t& v, const char* what) {
        if (!need(1, what))
            return false;
        v = static_cast<std::uint8_t>(data[pos++]);
        return true;
    }
    bool u32(std::uint32_t& v, const char* what) {
        if (!need(4, what))
            return false;
        v = get_u32(data, pos);
        pos += 4;
        return true;
    }
    bool u64(std::uint64_t& v, const char* what) {
        if (!need(8, what))
            return false;
        v = get_u64(data, pos);
        pos += 8;
        return true;
    }
    bool bytes(std::string_view& v, const char* what) {
        std::uint32_t n = 0;
        if (!u32(n, what) || !need(n, what))
            return false;
        v = data.substr(pos, n);
        pos += n;
        return true;
    }
    bool str(std::string& v, const char* what) {
        std::string_view b;
        if (!bytes(b, what))
            return false;
        v.assign(b);
        return true;
    }
    bool token(resume_token& t, const char* what) {
        std::string_view b;
        if (!bytes(b, what))
            return false;
        t.assign(byte_view(reinterpret_cast<const std::uint8_t*>(b.data()), b.size()));
        return true;
    }
    bool optional_token(std::optional<resume_token>& t, const char* what) {
        std::uint8_t flag = 0;
        if (!u8(flag, what))
            return false;
        if (flag > 1)
            return fail(std::string("bad presence flag of ") + what);
        t.reset();
        if (flag == 1)
            return token(t.emplace(), what);
        return true;
    }
    bool entry(manifest_entry& e) {
        std::uint8_t durable = 0;
        if (!u64(e.seq, "an entry's seq") || !str(e.key, "an entry's key") ||
            !str(e.db, "an entry's db") || !str(e.coll, "an entry's coll") ||
            !token(e.first, "an entry's first token") || !token(e.last, "an entry's last token") ||
            !u64(e.count, "an entry's count") || !u8(durable, "an entry's durable flag"))
            return false;
        if (durable > 1)
            return fail("entry '" + e.key + "' has a bad durable flag");
        e.durable = durable == 1;
        return true;
    }
    bool keys(std::vector<std::string>& out, const char* what) {
        std::uint32_t n = 0;
        if (!u32(n, what))
            return false;
        // Each key takes at least its 4-byte length: a count beyond that is damage, and
        // must not drive a huge reserve().
        if (n > (data.size() - pos) / 4)
            return fail(std::string("the count of ") + what + " exceeds the frame");
        out.clear();
        out.reserve(n);
        for (std::uint32_t i = 0; i < n; ++i) {
            if (!str(out.emplace_back(), what))
                return false;
        }
        return true;
    }
};

bool apply_snapshot(cursor& c, std::string_view scope_id, journal_state& out) {
    std::string scope;
    if (!c.str(scope, "the snapshot's scope id"))
        return false;
    if (scope != scope_id)
        return c.fail("it belongs to scope '" + scope + "'");
    std::optional<resume_token> wm;
    std::uint32_t n = 0;
    if (!c.optional_token(wm, "the snapshot's watermark") || !c.u32(n, "the snapshot's size"))
        return false;
    out.clear();
    if (wm)
        out.commit({.durable_keys = {}, .watermark = std::move(wm), .retire_keys = {}});
    std::uint64_t last_seq = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
        manifest_entry e;
        if (!c.entry(e))
            return false;
        if (i > 0 && e.seq < last_seq)
            return c.fail("snapshot entries are not in seq order at key '" + e.key + "'");
        if (out.contains(e.key))
            return c.fail("key '" + e.key + "' appears twice in the snapshot");
        last_seq = e.seq;
        out.record(e);
    }
    return true;
}

// Applies the operations of one intact frame.
bool apply_frame(std::string_view payload, bool first, std::string_view scope_id,
                 journal_state& out, std::string& why) {
    cursor c{payload};
    if (payload.empty()) {
        why = "the frame is empty";
        return false;
    }
    bool start = true;
    manifest_entry e;
    commit_request req;
    while (c.pos < payload.size()) {
        std::uint8_t t = 0;
        c.u8(t, "an operation tag");
        bool ok = false;
        if (t == snapshot_tag) {
            ok = first && start ? apply_snapshot(c, scope_id, out)
                                : c.fail("a snapshot that is not at the start of the file");
        } else if (first && start) {
            ok = c.fail("the file does not start with a snapshot");
        } else if (t == record_tag) {
            ok = c.entry(e);
            if (ok)
                out.record(e);
        } else if (t == commit_tag) {
            ok = c.keys(req.durable_keys, "durable keys") &&
                 c.optional_token(req.watermark, "a commit's watermark") &&
                 c.keys(req.retire_keys, "retired keys");
            if (ok)
                out.commit(req);
        } else {
            ok = c.fail("unknown operation tag " + std::to_string(t));
        }
        if (!ok) {
            why = c.why;
            return false;
        }
        start = false;
    }
    return true;
}

enum class frame_check { intact, bad, wrong_seq };

// Whether a frame numbered `seq` starts at `at`, complete and with a matching CRC.
frame_check check_frame(std::string_view file, std::size_t at, std::uint64_t seq,
                        std::uint32_t& len) {
    if (file.size() - at < frame_header_size)
        return frame_check::bad;
    len = get_u32(file, at);
    if (len > max_frame_payload || file.size() - at - frame_header_size < len)
        return frame_check::bad;
    const std::uint32_t stored = get_u32(file, at + 4);
    if (crc32c(0, file.data() + at + 8, 8 + std::size_t(len)) != stored)
        return frame_check::bad;
    return get_u64(file, at + 8) == seq ? frame_check::intact : frame_check::wrong_seq;
}

// Is there an intact frame numbered `seq` or later anywhere after `from`? Only frames
// written after an acknowledged one can be there, so finding one means the damage before
// it is not a torn tail.
bool intact_frame_after(std::string_view file, std::size_t from, std::uint64_t seq) {
    const std::uint64_t most = file.size() / frame_header_size + 1;
    for (std::size_t at = from; at + frame_header_size <= file.size(); ++at) {
        const std::uint64_t s = get_u64(file, at + 8);
        if (s < seq || s - seq > most)
            continue;
        std::uint32_t len = 0;
        if (check_frame(file, at, s, len) == frame_check::intact)
            return true;
    }
    return false;
}

}  // namespace

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t size) noexcept {
    auto* p = static_cast<const unsigned char*>(data);
    crc = ~crc;
    for (std::size_t i = 0; i < size; ++i)
        crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

void journal_state::record(const manifest_entry& e) {
    if (auto it = by_key_.find(e.key); it != by_key_.end()) {
        auto node = it->second;
        entry_bytes_ -= entry_size(node->second);
        by_key_.erase(it);
        entries_.erase(node);
    }
    auto node = entries_.emplace(order_key{e.seq, next_arrival_++}, e).first;
    by_key_.emplace(node->second.key, node);
    entry_bytes_ += entry_size(e);
}

void journal_state::commit(const commit_request& req) {
    for (const auto& k : req.durable_keys) {
        if (auto it = by_key_.find(k); it != by_key_.end())
            it->second->second.durable = true;
    }
    if (req.watermark)
        watermark_ = *req.watermark;
    for (const auto& k : req.retire_keys) {
        if (auto it = by_key_.find(k); it != by_key_.end()) {
            auto node = it->second;
            entry_bytes_ -= entry_size(node->second);
            by_key_.erase(it);
            entries_.erase(node);
        }
    }
}

void journal_state::clear() {
    by_key_.clear();
    entries_.clear();
    watermark_.reset();
    next_arrival_ = 0;
    entry_bytes_ = 0;
}

scope_state journal_state::to_scope_state() const {
    scope_state s;
    s.watermark = watermark_;
    s.entries.reserve(entries_.size());
    for (const auto& [order, e] : entries_)
        s.entries.push_back(e);
    return s;
}

std::uint64_t journal_state::snapshot_bytes(std::string_view scope_id) const noexcept {
    return 1 + 4 + scope_id.size() + 1 + (watermark_ ? 4 + watermark_->bytes().size() : 0) + 4 +
           entry_bytes_;
}

void append_journal_header(std::string& out) {
    out.append(magic, sizeof magic);
    put_u32(out, journal_version);
    put_u32(out, 0);
}

std::size_t begin_frame(std::string& out, std::uint64_t seq) {
    const std::size_t start = out.size();
    put_u32(out, 0);
    put_u32(out, 0);
    put_u64(out, seq);
    return start;
}

void end_frame(std::string& out, std::size_t start) {
    const std::size_t len = out.size() - start - frame_header_size;
    poke_u32(out, start, static_cast<std::uint32_t>(len));
    poke_u32(out, start + 4, crc32c(0, out.data() + start + 8, 8 + len));
}

void append_snapshot(std::string& out, std::string_view scope_id, const journal_state& state) {
    put_u8(out, snapshot_tag);
    put_str(out, scope_id);
    put_u8(out, state.watermark() ? 1 : 0);
    if (state.watermark())
        put_token(out, *state.watermark());
    put_u32(out, static_cast<std::uint32_t>(state.size()));
    state.for_each([&](const manifest_entry& e) { put_entry(out, e); });
}

void append_record(std::string& out, const manifest_entry& e) {
    put_u8(out, record_tag);
    put_entry(out, e);
}

void append_commit(std::string& out, const commit_request& req) {
    put_u8(out, commit_tag);
    put_u32(out, static_cast<std::uint32_t>(req.durable_keys.size()));
    for (const auto& k : req.durable_keys)
        put_str(out, k);
    put_u8(out, req.watermark ? 1 : 0);
    if (req.watermark)
        put_token(out, *req.watermark);
    put_u32(out, static_cast<std::uint32_t>(req.retire_keys.size()));
    for (const auto& k : req.retire_keys)
        put_str(out, k);
}

std::size_t record_bytes(const manifest_entry& e) noexcept {
    return 1 + entry_size(e);
}

replay_result replay_journal(std::string_view file, std::string_view scope_id, journal_state& out) {
    replay_result r;
    out.clear();
    auto corrupt = [&](std::uint64_t at, std::string why) {
        r.result = replay_result::outcome::corrupt;
        r.bad_offset = at;
        r.why = std::move(why);
        return r;
    };
    if (file.size() < journal_header_size || std::memcmp(file.data(), magic, sizeof magic) != 0)
        return corrupt(0, "it does not start with the journal header");
    r.version = get_u32(file, 8);
    if (r.version == 0)
        return corrupt(8, "its format version is 0");
    if (r.version > journal_version) {
        r.result = replay_result::outcome::newer_version;
        return r;
    }
    if (get_u32(file, 12) != 0)
        return corrupt(12, "its header has unknown flags");
    std::size_t at = journal_header_size;
    r.valid_size = at;
    std::string why;
    while (at < file.size()) {
        const std::uint64_t seq = r.last_seq + 1;
        std::uint32_t len = 0;
        switch (check_frame(file, at, seq, len)) {
            case frame_check::intact:
                break;
            case frame_check::wrong_seq:
                return corrupt(at, "frame " + std::to_string(seq) + " carries number " +
                                       std::to_string(get_u64(file, at + 8)));
            case frame_check::bad:
                if (r.last_seq == 0) {
                    // The first frame is written with the file before it gets its name.
                    return corrupt(at, "its first frame (the snapshot) is damaged");
                }
                if (intact_frame_after(file, at + 1, seq)) {
                    return corrupt(at, "frame " + std::to_string(seq) +
                                           " is damaged (length or checksum wrong) and "
                                           "acknowledged frames follow it");
                }
                r.torn_tail = true;
                return r;
        }
        std::string_view payload = file.substr(at + frame_header_size, len);
        if (!apply_frame(payload, r.last_seq == 0, scope_id, out, why))
            return corrupt(at, "frame " + std::to_string(seq) + ": " + why);
        at += frame_header_size + len;
        r.last_seq = seq;
        r.valid_size = at;
    }
    if (r.last_seq == 0)
        return corrupt(at, "it has no snapshot frame");
    return r;
}

}  // namespace penne::file::detail
