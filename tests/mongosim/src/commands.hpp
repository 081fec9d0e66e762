#pragma once
// The command layer: turns one decoded request into one outcome (a reply, silence, a closed
// connection, or "wait and ask me again"). It owns everything a primary knows: the store, the
// oplog, cursors, fail points and the topology description. It never touches a socket or a
// timer: waiting (awaitData getMore, awaitable hello, blockConnection) is expressed as an
// outcome with a deadline, and the connection driver re-executes the request when woken.
//
// With --replset N it is every member at once: the data, the oplog and the cursors are shared
// (so resume tokens are the same on every member), while hello, the primary's write rights,
// secondaryOk checks and cursor ownership follow the member a connection reached.
//
// Multi-document transactions (transactions.hpp) are per session: a command with
// autocommit: false runs against its transaction's own view of the data, and its change
// events reach the oplog only when commitTransaction succeeds.
//
// Thread safety: none; one instance per server, used from the server's thread.

#include "change_stream.hpp"
#include "oplog.hpp"
#include "retryable_writes.hpp"
#include "scram.hpp"
#include "store.hpp"
#include "transactions.hpp"

#include <mongosim/server.hpp>
#include <mongosim/wire.hpp>

#include <chrono>
#include <optional>
#include <random>
#include <unordered_map>
#include <utility>
#include <variant>

namespace mongosim {

using steady_time = std::chrono::steady_clock::time_point;

// What a connection knows about its client.
struct client_info {
    std::int64_t connection_id = 0;
    std::size_t member = 0;  // the replica set member (listening port) the client reached
    std::string app_name;
    bool handshake_done = false;
    // "<db>.<user>" once SCRAM succeeded; empty while unauthenticated.
    std::string authenticated;
    // The SASL conversation in progress, if any, and its id (drivers echo it in saslContinue).
    std::optional<scram_conversation> sasl;
    std::int32_t sasl_id = 0;
    bool sasl_skip_empty_exchange = false;
    bool sasl_awaiting_empty = false;  // proof verified; waiting for the client's empty step
    bool sasl_speculative = false;     // the conversation began in hello
    // Compressors agreed in the handshake, in the client's order of preference.
    std::vector<compressor> compressors;
};

// Traffic counters reported by serverStatus (the connection driver keeps them).
struct network_stats {
    struct codec {
        std::int64_t compressor_in = 0, compressor_out = 0;
        std::int64_t decompressor_in = 0, decompressor_out = 0;
    };
    std::int64_t bytes_in = 0, bytes_out = 0, requests = 0;
    std::int64_t connections_current = 0, connections_total = 0;
    codec by_compressor[4];  // indexed by compressor id
};

// serverStatus's security.authentication.mechanisms.<mech> counters.
struct auth_stats {
    std::int64_t speculative_received = 0, speculative_successful = 0;
    std::int64_t received = 0, successful = 0;
};

// State of one request across re-executions.
struct exec_context {
    std::optional<steady_time> deadline;  // set by the first execution that decides to wait
    bool failpoint_checked = false;
    std::optional<bson_ptr> failpoint_reply;  // error reply decided by a fail point
    bool failpoint_close = false;
    // failCommand's writeConcernError, attached to the reply after the command ran, and the
    // errorLabels that go with it.
    bson_ptr write_concern_error;
    std::optional<std::vector<std::string>> write_concern_error_labels;
};

struct outcome {
    enum class kind { reply, none, close, wait_oplog, wait_topology, sleep };
    kind what = kind::reply;
    bson_ptr reply;
    steady_time until{};
};

class command_processor {
public:
    explicit command_processor(server_options opts);

    outcome execute(const request& req, client_info& client, exec_context& ctx);
    // The members' "host:port", as hello reports them (hosts, primary, me), by member index.
    void advertise(std::vector<std::string> addresses);

    // Moves the primary to the next member (a new term and electionId; every member's
    // topologyVersion counter moves on). Returns the old primary, or nothing for a set of one.
    std::optional<std::size_t> step_down();
    // The old primary of a step-down that a command (replSetStepDown) performed since the last
    // call, so the connection driver can close that member's connections and wake hellos.
    std::optional<std::size_t> take_step_down() { return std::exchange(stepped_down_, {}); }
    std::size_t primary() const noexcept { return primary_; }
    std::size_t member_count() const noexcept { return members_.size(); }
    const std::string& address(std::size_t member) const { return members_.at(member).address; }

    const oplog& log() const noexcept { return oplog_; }
    oplog& log() noexcept { return oplog_; }  // for the load mode (preload.hpp)
    network_stats& network() noexcept { return network_; }
    bool auth_enabled() const noexcept { return !users_.empty(); }
    std::size_t cursor_count() const noexcept { return cursors_.size(); }

private:
    struct find_cursor {
        std::vector<shared_doc> docs;
        std::size_t next = 0;
        projection proj;
    };
    struct cursor {
        std::string ns;
        std::variant<find_cursor, change_stream> state;
        steady_time last_used;
        std::size_t member = 0;  // cursors live on the member that opened them
    };
    struct member_state {
        std::string address;
        bson_oid_t process_id;
        std::int64_t counter = 0;  // topologyVersion.counter
    };
    struct fail_point {
        bool active = false;
        std::int64_t times = -1;  // -1: alwaysOn
        std::vector<std::string> commands;
        std::optional<int> error_code;
        std::optional<std::vector<std::string>> labels;
        bool close_connection = false;
        int block_ms = 0;
        std::string app_name;
        bson_ptr write_concern_error;  // {code, errmsg}: the command runs, then this is added
        std::int64_t skip = 0;         // mode {skip: n}: let n matching commands pass
        double activation_probability = 1.0;  // mode {activationProbability: p}
    };
    using handler = outcome (command_processor::*)(const request&, client_info&, exec_context&);

    outcome dispatch(const request& req, client_info& client, exec_context& ctx);

    outcome cmd_hello(const request&, client_info&, exec_context&);
    outcome cmd_ping(const request&, client_info&, exec_context&);
    outcome cmd_build_info(const request&, client_info&, exec_context&);
    outcome cmd_end_sessions(const request&, client_info&, exec_context&);
    outcome cmd_list_databases(const request&, client_info&, exec_context&);
    outcome cmd_list_collections(const request&, client_info&, exec_context&);
    outcome cmd_create(const request&, client_info&, exec_context&);
    outcome cmd_coll_mod(const request&, client_info&, exec_context&);
    outcome cmd_drop(const request&, client_info&, exec_context&);
    outcome cmd_drop_database(const request&, client_info&, exec_context&);
    outcome cmd_rename(const request&, client_info&, exec_context&);
    outcome cmd_insert(const request&, client_info&, exec_context&);
    outcome cmd_update(const request&, client_info&, exec_context&);
    outcome cmd_delete(const request&, client_info&, exec_context&);
    outcome cmd_find(const request&, client_info&, exec_context&);
    outcome cmd_get_more(const request&, client_info&, exec_context&);
    outcome cmd_kill_cursors(const request&, client_info&, exec_context&);
    outcome cmd_count(const request&, client_info&, exec_context&);
    // distinct and findAndModify live in commands_extra.cpp.
    outcome cmd_distinct(const request&, client_info&, exec_context&);
    outcome cmd_find_and_modify(const request&, client_info&, exec_context&);
    outcome cmd_aggregate(const request&, client_info&, exec_context&);
    outcome cmd_create_indexes(const request&, client_info&, exec_context&);
    outcome cmd_list_indexes(const request&, client_info&, exec_context&);
    outcome cmd_drop_indexes(const request&, client_info&, exec_context&);
    outcome cmd_configure_fail_point(const request&, client_info&, exec_context&);
    outcome cmd_generate(const request&, client_info&, exec_context&);
    outcome cmd_sasl_start(const request&, client_info&, exec_context&);
    outcome cmd_sasl_continue(const request&, client_info&, exec_context&);
    outcome cmd_server_status(const request&, client_info&, exec_context&);
    outcome cmd_repl_set_step_down(const request&, client_info&, exec_context&);
    outcome cmd_repl_set_get_status(const request&, client_info&, exec_context&);
    outcome cmd_commit_transaction(const request&, client_info&, exec_context&);
    outcome cmd_abort_transaction(const request&, client_info&, exec_context&);

    // Runs a command of a transaction: against the transaction's view of the data, with its
    // change events kept in the transaction; a failed command aborts the transaction.
    outcome run_in_transaction(transaction& t, handler h, const std::string& name,
                               const request& req, client_info& client, exec_context& ctx);
    void abort(transaction& t);

    // Refuses writes on a secondary (NotWritablePrimary) and reads there without a
    // secondaryOk read preference (NotPrimaryNoSecondaryOk).
    std::optional<outcome> check_role(const std::string& name, const request& req,
                                      const client_info& client);
    // Registers a cursor owned by the member the current request reached.
    void add_cursor(std::int64_t id, cursor c);

    // Starts a SCRAM conversation from a saslStart-shaped document (saslStart itself or hello's
    // speculativeAuthenticate). Returns the reply fields {conversationId, done, payload}, or
    // sets code/message and returns nullptr.
    bson_ptr sasl_start(const bson_t& cmd, const std::string& db, client_info& client, int& code,
                        std::string& message);

    outcome open_stream(const request& req, const bson_t& pipeline, exec_context& ctx);
    outcome run_pipeline(const request& req, collection* c, const bson_t& pipeline);

    // Reply helpers: ok replies get ok, $clusterTime and operationTime appended.
    outcome ok(bson_ptr body);
    outcome error(int code, const std::string& message,
                  const std::vector<std::string>& labels = {});
    outcome error(const cmd_error& e) { return error(e.code, e.message); }
    bson_ptr error_doc(int code, const std::string& message,
                       const std::vector<std::string>& labels);
    void append_cluster_time(bson_t* out);
    // Cursor reply {cursor: {<batch_key>: [...], [postBatchResumeToken], id, ns}}.
    void append_cursor(bson_t* out, const char* batch_key, const std::vector<bson_ptr>& docs,
                       std::int64_t id, const std::string& ns,
                       const std::optional<token_position>& pbrt);

    // Records a change event (inside a transaction: keeps it for the commit); returns its
    // cluster time.
    timestamp record(event_record e);
    // Gets or creates a collection, recording a create event for a new one.
    collection& obtain(const std::string& db, const std::string& coll);
    std::int64_t new_cursor_id();
    void reap_cursors(steady_time now);
    // failCommand: an error, a closed connection or a block fires before anything else; a
    // writeConcernError only on a command that will run (`will_run`: not refused as on a
    // secondary), as mongod adds it after the command; a command refused leaves it armed.
    std::optional<outcome> check_fail_point(const std::string& name, const request& req,
                                            client_info& client, exec_context& ctx, bool will_run);
    // A retryable write already done (same lsid and txnNumber): its first reply, or
    // TransactionTooOld for an older txnNumber (commands_extra.cpp).
    std::optional<outcome> replay_retried_write(const std::string& name, const request& req);
    // After a handler ran: records a retryable write's reply, attaches a fail point's
    // writeConcernError (commands_extra.cpp).
    void finish_command(const std::string& name, const request& req, exec_context& ctx,
                        outcome& out);
    // Fail point modes beyond off/alwaysOn/{times}: {skip: n} and {activationProbability: p}
    // (commands_extra.cpp). `off` is set for a mode that turns the fail point off.
    std::optional<cmd_error> parse_fail_point_mode(const bson_iter_t& mode, fail_point& fp,
                                                   bool& off);
    bool fail_point_fires(fail_point& fp);
    // failGetMoreAfterCursorCheckout, per member (commands_extra.cpp): a getMore that found its
    // cursor fails with the returned code (data.errorCode, else InternalError) and loses it.
    outcome configure_checkout_fail_point(const request& req, const client_info& client);
    std::optional<int> checkout_fail_point_fires(const client_info& client);

    server_options opts_;
    std::vector<member_state> members_;
    std::size_t primary_ = 0;
    std::int64_t term_ = 1;  // election term: lastWrite.opTime.t and the electionId's tail
    std::optional<std::size_t> stepped_down_;
    // The member of the request being executed (for add_cursor).
    std::size_t current_member_ = 0;
    store store_;
    oplog oplog_;
    std::unordered_map<std::int64_t, cursor> cursors_;
    session_registry sessions_;
    transaction* current_txn_ = nullptr;  // the transaction of the command being executed
    std::unordered_map<std::string, handler> handlers_;
    // One per member, as every mongod has its own (configureFailPoint acts on the member the
    // connection reached).
    std::vector<fail_point> fail_points_;
    std::vector<fail_point> checkout_fail_points_;  // failGetMoreAfterCursorCheckout, by member
    // The session table of retryable writes, shared by the members (retryable_writes.hpp).
    retryable_write_table retryable_writes_;
    user_registry users_;
    network_stats network_;
    auth_stats auth_stats_[2];  // indexed by scram_mechanism
    steady_time started_ = std::chrono::steady_clock::now();
    std::mt19937_64 rng_;
    steady_time last_reap_ = std::chrono::steady_clock::now();
};

}  // namespace mongosim
