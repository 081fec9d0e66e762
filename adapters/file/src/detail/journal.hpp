#pragma once
// The file state store's on-disk journal, as a pure codec: bytes in, state out, and the
// bytes to append for each operation. No file descriptors here (state_store.cpp does the
// I/O), so torn and corrupt files are tested by editing byte strings.
//
// Layout of `scope-<id>.journal` (all integers little-endian):
//
//   header   8 bytes "PNJRNL\r\n", u32 format version, u32 zero
//   frame*   u32 payload length, u32 CRC-32C of (seq, payload), u64 seq, payload
//
// Frames are numbered 1, 2, 3, ... in file order; every write() of the store appends
// exactly one frame, and the next frame is written only after the previous one was
// fdatasync'ed. So only the last frame can be torn by a crash. A frame's payload is a
// sequence of operations (u8 tag, then fields): the file's first operation, and only
// that one, is a snapshot (scope id, watermark, entries in seq order); every later one is
// a record (one manifest entry) or a commit (durable keys, watermark, retired keys), the
// operations of a group of overlapping calls share one frame. Strings and resume tokens
// are u32 length + bytes; the optional watermark is a u8 flag before the token.
//
// Replay tells a torn tail from damage in the middle: when a frame is incomplete or its
// CRC does not match, the rest of the file is searched for a later intact frame (the next
// seq numbers). If there is one, the bad frame was followed by acknowledged writes, so it
// is corruption and replay fails with its offset; if not, the bad bytes are the torn tail
// of a crash mid-append and are ignored (the store truncates them before appending).
//
// Thread safety: journal_state is a plain value (no synchronisation); the functions are
// pure.

#include <penne/state_store.hpp>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace penne::file::detail {

inline constexpr std::uint32_t journal_version = 1;
inline constexpr std::size_t journal_header_size = 16;
inline constexpr std::size_t frame_header_size = 16;
// Far above any real snapshot (10,000 entries take ~3 MB); a larger length is damage.
inline constexpr std::uint32_t max_frame_payload = 256u << 20;

std::uint32_t crc32c(std::uint32_t crc, const void* data, std::size_t size) noexcept;

// A scope's state with the indexes that make record() and commit() O(log n): entries in
// (seq, arrival) order, which is the order apply_record() keeps, plus a key index. Applying
// the same operations as penne::apply_record/apply_commit gives the same scope_state.
class journal_state {
public:
    journal_state() = default;
    journal_state(const journal_state&) = delete;
    journal_state& operator=(const journal_state&) = delete;
    journal_state(journal_state&&) = default;
    journal_state& operator=(journal_state&&) = default;

    void record(const manifest_entry& e);
    void commit(const commit_request& req);
    void clear();

    scope_state to_scope_state() const;
    const std::optional<resume_token>& watermark() const noexcept { return watermark_; }
    std::size_t size() const noexcept { return entries_.size(); }
    bool contains(std::string_view key) const { return by_key_.contains(key); }
    // Bytes a snapshot operation of this state takes (the compaction threshold's measure).
    std::uint64_t snapshot_bytes(std::string_view scope_id) const noexcept;

    template <class F>
    void for_each(F&& f) const {
        for (const auto& [order, e] : entries_)
            f(e);
    }

private:
    using order_key = std::pair<std::uint64_t, std::uint64_t>;  // (seq, arrival)
    using entry_map = std::map<order_key, manifest_entry>;

    entry_map entries_;
    // Views into the keys of entries_' nodes, which never move.
    std::unordered_map<std::string_view, entry_map::iterator> by_key_;
    std::optional<resume_token> watermark_;
    std::uint64_t next_arrival_ = 0;
    std::uint64_t entry_bytes_ = 0;
};

// Encoding. A frame is opened with begin_frame(), filled with append_* and closed with
// end_frame(), which writes its length and CRC.
void append_journal_header(std::string& out);
std::size_t begin_frame(std::string& out, std::uint64_t seq);
void end_frame(std::string& out, std::size_t start);
void append_snapshot(std::string& out, std::string_view scope_id, const journal_state& state);
void append_record(std::string& out, const manifest_entry& e);
void append_commit(std::string& out, const commit_request& req);
// The bytes append_record() adds for `e`: bounded by the entry's own fields, whatever else
// the scope holds.
std::size_t record_bytes(const manifest_entry& e) noexcept;

struct replay_result {
    enum class outcome { ok, corrupt, newer_version };
    outcome result = outcome::ok;
    std::uint64_t valid_size = 0;  // bytes up to the end of the last intact frame
    std::uint64_t last_seq = 0;    // seq of that frame
    bool torn_tail = false;        // bytes after valid_size are the remains of a crash
    std::uint64_t bad_offset = 0;  // corrupt: where the damage starts
    std::uint32_t version = 0;     // newer_version: the file's version
    std::string why;               // corrupt: what is wrong there
};

// Rebuilds `out` from a whole journal file. `out` is cleared first; on failure it holds
// an unspecified partial state and must not be used.
replay_result replay_journal(std::string_view file, std::string_view scope_id, journal_state& out);

}  // namespace penne::file::detail
