#include "transactions.hpp"

#include <array>

namespace mongosim {
namespace {

constexpr int invalid_options = 72;
constexpr int write_conflict = 112;
constexpr int conflicting_operation = 117;
constexpr int transaction_too_old = 225;
constexpr int no_such_transaction = 251;
constexpr int transaction_committed = 256;

const std::string transient = "TransientTransactionError";

std::string session_text(const std::string& session) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : session) {
        out += digits[c >> 4];
        out += digits[c & 0xF];
    }
    return out;
}

collection clone(const collection& c) {
    collection out;
    out.docs = c.docs;
    out.by_id = c.by_id;
    out.next_slot = c.next_slot;
    out.uuid = c.uuid;
    out.options = copy_bson(c.options.get());
    for (const auto& ix : c.indexes)
        out.indexes.push_back(copy_bson(ix.get()));
    out.pre_and_post_images = c.pre_and_post_images;
    return out;
}

// The _id value of an event's documentKey, when it has one.
bool document_id(const event_record& e, bson_iter_t& id) {
    return e.document_key && bson_iter_init_find(&id, e.document_key.get(), "_id");
}

shared_doc lookup(const collection* c, const bson_value_t& id) {
    return c != nullptr ? c->find_id(id) : shared_doc{};
}

// The shared store's collection for a commit, created like the transaction's when absent.
collection& shared_collection(store& shared, const std::string& db, const std::string& coll,
                              const collection* mine) {
    bool created = false;
    collection& c = shared.obtain(db, coll, created);
    if (created && mine != nullptr) {
        c.uuid = mine->uuid;
        c.options = copy_bson(mine->options.get());
        c.pre_and_post_images = mine->pre_and_post_images;
    }
    return c;
}

}  // namespace

failure parse_txn_fields(const bson_t& cmd, txn_fields& out) {
    bson_iter_t it;
    if (bson_iter_init_find(&it, &cmd, "lsid")) {
        bson_iter_t id;
        if (!BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &id) ||
            !bson_iter_find(&id, "id") || !BSON_ITER_HOLDS_BINARY(&id))
            return cmd_error{40414,
                             "BSON field 'OperationSessionInfo.lsid.id' is missing or is "
                             "not a UUID"};
        bson_subtype_t subtype;
        std::uint32_t len;
        const std::uint8_t* bytes;
        bson_iter_binary(&id, &subtype, &len, &bytes);
        out.session.assign(reinterpret_cast<const char*>(bytes), len);
        out.lsid_id = make_bson();
        bson_append_binary(out.lsid_id.get(), "id", 2, subtype, bytes, len);
    }
    if (bson_iter_init_find(&it, &cmd, "txnNumber")) {
        if (!BSON_ITER_HOLDS_INT64(&it) && !BSON_ITER_HOLDS_INT32(&it))
            return cmd_error{14,
                             "BSON field 'OperationSessionInfo.txnNumber' is the wrong "
                             "type, expected type 'long'"};
        out.txn_number = bson_iter_as_int64(&it);
        if (*out.txn_number < 0)
            return cmd_error{2, "txnNumber may not be negative"};
    }
    if (bson_iter_init_find(&it, &cmd, "autocommit")) {
        if (!BSON_ITER_HOLDS_BOOL(&it))
            return cmd_error{14,
                             "BSON field 'OperationSessionInfo.autocommit' is the wrong "
                             "type, expected type 'bool'"};
        out.autocommit = bson_iter_bool(&it);
    }
    if (bson_iter_init_find(&it, &cmd, "startTransaction")) {
        if (!BSON_ITER_HOLDS_BOOL(&it))
            return cmd_error{14,
                             "BSON field 'OperationSessionInfo.startTransaction' is the "
                             "wrong type, expected type 'bool'"};
        out.start = bson_iter_bool(&it);
        if (!out.start)
            return cmd_error{invalid_options, "Specifying startTransaction=false is not allowed."};
    }
    if (out.txn_number && out.session.empty())
        return cmd_error{invalid_options,
                         "Transaction number requires a session ID to also be specified"};
    if (out.autocommit && *out.autocommit)
        return cmd_error{invalid_options, "autocommit:true is not supported"};
    if (out.autocommit && !out.txn_number)
        return cmd_error{invalid_options,
                         "'autocommit' field requires a transaction number to also be specified"};
    if (out.start && !out.autocommit)
        return cmd_error{invalid_options,
                         "'startTransaction' field requires 'autocommit' field to also be "
                         "specified"};
    return {};
}

std::optional<txn_error> session_registry::begin_or_continue(
    const txn_fields& f, const std::string& command, const std::array<std::uint8_t, 32>& uid,
    transaction*& out) {
    const std::int64_t number = *f.txn_number;
    if (sessions_.size() >= max_sessions && !sessions_.contains(f.session)) {
        // Forget finished transactions of idle sessions, as mongod reaps expired sessions.
        std::erase_if(sessions_, [](const auto& kv) {
            return !kv.second.txn || kv.second.txn->status != transaction::state::in_progress;
        });
    }
    session& s = sessions_[f.session];
    if (number < s.txn_number)
        return txn_error{{transaction_too_old,
                          "Cannot start transaction " + std::to_string(number) + " on session " +
                              session_text(f.session) + " because a newer transaction " +
                              std::to_string(s.txn_number) + " has already started."},
                         {}};
    if (number > s.txn_number) {
        if (!f.start)
            return txn_error{{no_such_transaction,
                              "Given transaction number " + std::to_string(number) +
                                  " does not match any in-progress transactions. The active "
                                  "transaction number is " +
                                  std::to_string(s.txn_number)},
                             {transient}};
        // A new transaction number aborts whatever the session had open.
        s.txn_number = number;
        s.txn.emplace();
        transaction& t = *s.txn;
        t.number = number;
        bson_ptr lsid = copy_bson(f.lsid_id.get());
        bson_append_binary(lsid.get(), "uid", 3, BSON_SUBTYPE_BINARY, uid.data(),
                           static_cast<std::uint32_t>(uid.size()));
        t.lsid = share(std::move(lsid));
        out = &t;
        return std::nullopt;
    }
    if (f.start)
        return txn_error{{conflicting_operation,
                          "Only servers in a sharded cluster can start a new transaction at the "
                          "active transaction number"},
                         {}};
    if (!s.txn)  // the number belongs to a retryable write
        return txn_error{
            {no_such_transaction, "Given transaction number " + std::to_string(number) +
                                      " does not match any in-progress transactions."},
            {transient}};
    transaction& t = *s.txn;
    switch (t.status) {
        case transaction::state::in_progress:
            break;
        case transaction::state::committed:
            if (command != "commitTransaction")
                return txn_error{{transaction_committed,
                                  "Transaction " + std::to_string(number) + " has been committed."},
                                 {}};
            break;
        case transaction::state::aborted:
            return txn_error{
                {no_such_transaction, "Transaction with { txnNumber: " + std::to_string(number) +
                                          " } has been aborted."},
                {transient}};
    }
    out = &t;
    return std::nullopt;
}

std::optional<txn_error> session_registry::retryable_write(const txn_fields& f) {
    // Only sessions that ran a transaction are tracked here (retryable writes have their own
    // table): a session without one has nothing to abort.
    auto found = sessions_.find(f.session);
    if (found == sessions_.end())
        return std::nullopt;
    session& s = found->second;
    const std::int64_t number = *f.txn_number;
    if (number < s.txn_number)
        return txn_error{
            {transaction_too_old, "Retryable write with txnNumber " + std::to_string(number) +
                                      " is prohibited on session " + session_text(f.session) +
                                      " because a newer retryable write with txnNumber " +
                                      std::to_string(s.txn_number) +
                                      " has already started on this session."},
            {}};
    if (number > s.txn_number) {
        s.txn_number = number;
        s.txn.reset();
    } else if (s.txn) {
        return txn_error{{conflicting_operation,
                          "Cannot run a retryable write with txnNumber " + std::to_string(number) +
                              ", which is in use by a multi-document transaction"},
                         {}};
    }
    return std::nullopt;
}

void session_registry::end_session(const std::string& session) {
    sessions_.erase(session);
}

void session_registry::abort_all() {
    for (auto& [id, s] : sessions_) {
        if (s.txn && s.txn->status == transaction::state::in_progress) {
            s.txn->status = transaction::state::aborted;
            s.txn->data = store{};
            s.txn->base.clear();
            s.txn->ops.clear();
        }
    }
}

std::size_t session_registry::open_transactions() const {
    std::size_t n = 0;
    for (const auto& [id, s] : sessions_)
        n += s.txn && s.txn->status == transaction::state::in_progress ? 1 : 0;
    return n;
}

void touch_collection(transaction& t, store& shared, const std::string& db,
                      const std::string& coll) {
    auto [it, inserted] = t.base.try_emplace({db, coll});
    if (!inserted)
        return;
    if (const collection* c = shared.find(db, coll)) {
        it->second = clone(*c);
        t.data.put(db, coll, clone(*c));
    }
}

std::optional<txn_error> check_conflicts(const transaction& t, store& shared, std::size_t from) {
    for (std::size_t k = from; k < t.ops.size(); ++k) {
        const event_record& e = t.ops[k];
        bson_iter_t id;
        if (!document_id(e, id))
            continue;
        auto b = t.base.find({e.db, e.coll});
        const collection* before = b != t.base.end() ? &b->second : nullptr;
        const bson_value_t& v = *bson_iter_value(&id);
        const collection* now = shared.find(e.db, e.coll);
        // A collection that existed at the snapshot and was dropped (or replaced) since.
        const bool gone = before != nullptr && before->uuid != std::array<std::uint8_t, 16>{} &&
                          (now == nullptr || now->uuid != before->uuid);
        if (gone || lookup(before, v) != lookup(now, v))
            return txn_error{{write_conflict,
                              "WriteConflict error: this operation conflicted with another "
                              "operation. Please retry your operation or multi-document "
                              "transaction."},
                             {transient}};
    }
    return std::nullopt;
}

void apply_transaction(transaction& t, store& shared) {
    for (const event_record& e : t.ops) {
        const collection* mine = t.data.find(e.db, e.coll);
        if (e.op == op_type::create) {
            shared_collection(shared, e.db, e.coll, mine);
            continue;
        }
        bson_iter_t id;
        if (!document_id(e, id))
            continue;
        const bson_value_t& v = *bson_iter_value(&id);
        shared_doc doc = lookup(mine, v);
        collection* target = shared.find(e.db, e.coll);
        if (doc && target == nullptr)
            target = &shared_collection(shared, e.db, e.coll, mine);
        if (target == nullptr)
            continue;
        auto slot = target->by_id.find(id_key(v));
        if (doc && slot != target->by_id.end()) {
            target->docs[slot->second] = doc;
        } else if (doc) {
            target->insert(doc);  // absent here, so it cannot collide
        } else if (slot != target->by_id.end()) {
            target->docs.erase(slot->second);
            target->by_id.erase(slot);
        }
    }
}

}  // namespace mongosim
