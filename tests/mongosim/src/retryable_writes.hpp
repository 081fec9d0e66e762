#pragma once
// The session table of retryable writes, as mongod keeps it in config.transactions: for every
// logical session (lsid), the highest txnNumber a retryable write used and the reply that write
// got. A driver retries a write (after NotWritablePrimary, a closed connection or a retryable
// writeConcernError) with the same lsid and txnNumber; the table answers such a retry with the
// first execution's result instead of applying the write twice. mongosim's members share one
// table, as a replica set replicates it, so a retry on the new primary after a step-down is
// deduplicated too. A txnNumber lower than the session's latest is TransactionTooOld (225).
//
// Only retryable writes take part: insert, update, delete and findAndModify carrying lsid and
// txnNumber and no autocommit field (commands inside a transaction belong to the transaction).
//
// Thread safety: none; owned by the command processor and used from the server's thread.
// Lifetimes: check() returns a pointer into the table, valid until the next remember().

#include <mongosim/bson.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace mongosim {

class retryable_write_table {
public:
    // Who the write belongs to: the lsid's bytes and the txnNumber.
    struct write_id {
        std::string session;
        std::int64_t txn_number = 0;
    };
    enum class verdict {
        execute,  // a new write (or one whose earlier attempt did not complete): run it
        replay,   // already done: answer with `reply`
        too_old,  // the session has moved on to a later txnNumber: TransactionTooOld
    };
    struct lookup {
        verdict what = verdict::execute;
        const bson_t* reply = nullptr;  // set for replay: the body to send again
        std::int64_t latest = 0;        // set for too_old: the session's txnNumber
    };

    explicit retryable_write_table(std::size_t max_sessions = 100'000)
        : max_sessions_(max_sessions) {}

    // The retryable write a command is, or nothing when it is not one.
    static std::optional<write_id> identify(std::string_view command_name, const bson_t& cmd);

    lookup check(const write_id& id);
    // Records the reply of a completed write. Only the reply's own fields are kept: ok,
    // $clusterTime, operationTime and errorLabels are left out (a replay gets fresh ones).
    void remember(const write_id& id, const bson_t& reply);

    std::size_t size() const noexcept { return sessions_.size(); }

private:
    struct entry {
        std::int64_t txn_number = 0;
        bson_ptr reply;  // null while the session's latest write has not completed
        std::uint64_t last_used = 0;
    };
    void evict();

    std::unordered_map<std::string, entry> sessions_;
    std::uint64_t tick_ = 0;
    std::size_t max_sessions_;
};

}  // namespace mongosim
