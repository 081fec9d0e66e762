#pragma once
// The oplog as change streams see it: one global, ordered list of change events, plus the
// cluster clock that stamps them and the resume tokens that name positions in it. Every event
// has its own cluster time, except the operations of a committed multi-document transaction,
// which share the commit's (one applyOps entry in MongoDB's oplog) and are told apart by their
// index in the transaction. Change-stream cursors (change_stream.hpp) read from here.
//
// Resume tokens are {_data: "<hex>"}: "82", the timestamp (8 hex digits of seconds, 8 of
// increment), a kind (event, invalidate, high-water), for an operation of a transaction its
// index in it (8 hex digits, MongoDB's txnOpIndex) and, for a fragment of an event split by
// $changeStreamSplitLargeEvent, the fragment number (4 hex digits). Hex strings compare in
// oplog order (a transaction's operations sort in operation order, an event's fragments after
// the event and in fragment order), and an event's token depends only on its position, so it
// is the same for every stream and every reopening. Clients must treat them as opaque, as
// with a real server.
//
// The oplog may be bounded by a count of events and by bytes (the BSON size of the stored
// entries); the oldest entries are dropped first, a transaction's operations all at once.
//
// Thread safety: none; single-threaded server state.

#include <mongosim/bson.hpp>

#include <array>
#include <compare>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace mongosim {

struct timestamp {
    std::uint32_t t = 0;
    std::uint32_t i = 0;
    auto operator<=>(const timestamp&) const = default;
};

// Cluster time: Timestamp(unix seconds, increment), strictly increasing on every tick.
class cluster_clock {
public:
    cluster_clock();
    timestamp tick();
    timestamp now() const noexcept { return last_; }

private:
    timestamp last_;
};

enum class op_type {
    insert,
    update,
    replace,
    remove,
    drop,
    rename,
    drop_database,
    create,
    create_indexes,
    drop_indexes,
    modify
};
const char* op_name(op_type op) noexcept;

struct event_record {
    timestamp ts;
    std::int64_t wall_ms = 0;
    op_type op = op_type::insert;
    std::string db;
    std::string coll;             // empty for dropDatabase
    shared_doc document_key;      // {_id: ...} for insert/update/replace/delete
    shared_doc full_document;     // insert and replace: the document as written
    bson_ptr update_description;  // update: {updatedFields, removedFields, truncatedArrays}
    std::string to_db, to_coll;   // rename target
    // The collection's UUID (collectionUUID of expanded events); unset for dropDatabase.
    std::optional<std::array<std::uint8_t, 16>> uuid;
    // Images recorded when the collection had changeStreamPreAndPostImages enabled: the
    // document before an update/replace/delete and after an update/replace.
    shared_doc pre_image;
    shared_doc post_image;
    // Expanded events (create, createIndexes, dropIndexes, modify, rename): the event's
    // operationDescription, and modify's stateBeforeChange.
    bson_ptr operation_description;
    bson_ptr state_before_change;
    // Set for the operations of a committed transaction: the session's lsid ({id, uid}), the
    // transaction number, this operation's index in it and how many operations it has.
    shared_doc lsid;
    std::int64_t txn_number = 0;
    std::uint32_t txn_index = 0;
    std::uint32_t txn_ops = 0;
    bool in_transaction() const noexcept { return lsid != nullptr; }
};

enum class token_kind : std::uint8_t { event = 1, invalidate = 2, high_water = 3 };
struct token_position {
    timestamp ts;
    token_kind kind = token_kind::event;
    std::uint32_t fragment = 0;  // 1-based fragment of a split event; 0: the whole event
    // Index of the operation in its transaction (event tokens of transactions only).
    std::optional<std::uint32_t> txn_index;
};
std::string encode_token(timestamp ts, token_kind kind, std::uint32_t fragment = 0,
                         std::optional<std::uint32_t> txn_index = std::nullopt);
std::string encode_token(const token_position& pos);
bool decode_token(std::string_view hex, token_position& out);
// Appends {_data: "..."} under key.
void append_token(bson_t* out, const char* key, timestamp ts, token_kind kind,
                  std::uint32_t fragment = 0);
void append_token(bson_t* out, const char* key, const token_position& pos);
// The event token of a whole event (or of one fragment of it).
token_position event_position(const event_record& e, std::uint32_t fragment = 0);
// The position just after an event that a stream passed over without returning it: a
// high-water mark at its time, or inside a transaction that has more operations, the event's
// own token (a high-water mark would skip the rest of the transaction).
token_position position_after(const event_record& e);

class oplog {
public:
    // cap: the most events kept; cap_bytes: the most bytes (BSON size of the entries) kept;
    // 0: unbounded. Older entries are dropped first, but never the newest entry (or
    // transaction), so one entry larger than cap_bytes stays until the next one arrives.
    explicit oplog(std::size_t cap, std::size_t cap_bytes = 0) : cap_(cap), cap_bytes_(cap_bytes) {}

    cluster_clock& clock() noexcept { return clock_; }
    // Stamps the event with a fresh cluster time and wall time and appends it.
    timestamp append(event_record e);
    // Appends the operations of a committed transaction, in order, under one fresh cluster
    // time and wall time, numbering them (txn_index, txn_ops). Each must have lsid set.
    // Returns the commit's cluster time (nothing is appended for no operations).
    timestamp append_transaction(std::vector<event_record> ops);
    // Bytes of the entries kept (BSON size of their documents and fields).
    std::size_t bytes() const noexcept { return bytes_; }

    std::uint64_t begin_seq() const noexcept { return first_seq_; }
    std::uint64_t end_seq() const noexcept { return first_seq_ + entries_.size(); }
    const event_record& at(std::uint64_t seq) const { return entries_[seq - first_seq_]; }
    // Timestamp of the newest event that was dropped by the cap, if any.
    std::optional<timestamp> truncated_through() const noexcept { return truncated_; }
    std::optional<timestamp> last_ts() const;

    // First sequence number whose event is after ts (or at/after, for start-at semantics).
    std::uint64_t seq_after(timestamp ts) const;
    std::uint64_t seq_at_or_after(timestamp ts) const;
    // Sequence number of the event stamped exactly ts (the first operation of a transaction).
    std::optional<std::uint64_t> seq_of(timestamp ts) const;
    // Sequence number of the event a token names: stamped ts, and with txn_index set, that
    // operation of the transaction committed at ts.
    std::optional<std::uint64_t> seq_of(timestamp ts, std::optional<std::uint32_t> txn_index) const;

private:
    void push(event_record e);
    void trim();

    cluster_clock clock_;
    std::deque<event_record> entries_;
    std::deque<std::size_t> sizes_;  // bytes of each entry, parallel to entries_
    std::uint64_t first_seq_ = 0;
    std::size_t cap_;
    std::size_t cap_bytes_;
    std::size_t bytes_ = 0;
    std::optional<timestamp> truncated_;
};

}  // namespace mongosim
