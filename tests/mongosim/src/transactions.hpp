#pragma once
// Multi-document transactions as a MongoDB 7.0 replica-set primary runs them: the per-session
// (lsid) transaction state, the rules by which a command starts, continues, commits or aborts
// a transaction (with mongod's error codes and the TransientTransactionError label), and each
// transaction's own view of the data.
//
// A transaction works on private copies of the collections it touches, taken when a command
// of the transaction first names the collection (its snapshot), so its reads see its own
// writes and nobody else sees them before the commit. Its change events are kept aside and
// only reach the oplog at commit, all under one cluster time. Commit writes the documents the
// transaction changed into the shared store; abort simply forgets the copies, so the store is
// exactly as before. A document the transaction writes that someone else changed after the
// transaction's snapshot is a write conflict (WriteConflict, 112, TransientTransactionError):
// the transaction is aborted, as mongod aborts a transaction that loses a write conflict.
// Unlike mongod, a plain write to a document an open transaction wrote does not wait for the
// transaction: it goes through, and the transaction fails at commit with that WriteConflict.
// Copying a collection costs a pointer per document, so transactions suit test-sized data.
//
// Thread safety: none; single-threaded server state, owned by the command processor.
// Lifetimes: the transaction begin_or_continue hands out lives until its session is ended,
// or forgotten once finished and idle; use it within the command that asked for it.

#include "oplog.hpp"
#include "store.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace mongosim {

// What a command says about sessions and transactions.
struct txn_fields {
    std::string session;  // the bytes of lsid.id; empty without lsid
    bson_ptr lsid_id;     // {id: <the UUID>} as sent
    std::optional<std::int64_t> txn_number;
    std::optional<bool> autocommit;  // present: the command belongs to a transaction
    bool start = false;              // startTransaction: true
};

// Reads lsid, txnNumber, autocommit and startTransaction, checking their types and the
// combinations mongod refuses (autocommit: true, startTransaction without autocommit: false,
// autocommit without txnNumber).
failure parse_txn_fields(const bson_t& cmd, txn_fields& out);

struct transaction {
    enum class state { in_progress, committed, aborted };

    std::int64_t number = 0;
    state status = state::in_progress;
    shared_doc lsid;  // {id: UUID, uid: binData}, as change events carry it
    // The transaction's view of the collections it touched, and the same collections as they
    // were when first touched (to detect write conflicts at write and at commit time).
    store data;
    std::map<std::pair<std::string, std::string>, collection> base;
    std::vector<event_record> ops;  // change events, in operation order, not yet in the oplog
};

// An error with the labels mongod attaches to it.
struct txn_error {
    cmd_error error;
    std::vector<std::string> labels;
};

class session_registry {
public:
    // Finds or starts the transaction a command with autocommit: false runs in (mongod's
    // beginOrContinue): startTransaction with a newer txnNumber starts one (aborting the
    // session's open one), later commands continue it, commitTransaction of a committed one
    // is an idempotent retry. uid is the SHA-256 of the authenticated user for lsid.uid.
    std::optional<txn_error> begin_or_continue(const txn_fields& f, const std::string& command,
                                               const std::array<std::uint8_t, 32>& uid,
                                               transaction*& out);
    // A retryable write (txnNumber without autocommit) on a session that ran transactions
    // moves it on to its number, aborting an older open transaction; an older number is
    // TransactionTooOld.
    std::optional<txn_error> retryable_write(const txn_fields& f);
    // endSessions: forgets the session, aborting its open transaction.
    void end_session(const std::string& session);
    // A step-down: every open transaction is aborted.
    void abort_all();
    std::size_t open_transactions() const;

private:
    // Beyond this many sessions, those without an open transaction are forgotten.
    static constexpr std::size_t max_sessions = 100'000;

    struct session {
        std::int64_t txn_number = -1;    // the newest txnNumber seen on the session
        std::optional<transaction> txn;  // the transaction with that number, if any
    };
    std::unordered_map<std::string, session> sessions_;
};

// Makes the transaction's private copy of a collection (and its snapshot) unless it has one.
void touch_collection(transaction& t, store& shared, const std::string& db,
                      const std::string& coll);

// Checks the documents named by ops[from..] for changes made in the shared store since the
// transaction's snapshot; on one, WriteConflict (112) with TransientTransactionError.
std::optional<txn_error> check_conflicts(const transaction& t, store& shared, std::size_t from);

// Writes what the transaction changed into the shared store (the final version of every
// document it wrote, collections it created). Call after check_conflicts(t, shared, 0).
void apply_transaction(transaction& t, store& shared);

}  // namespace mongosim
