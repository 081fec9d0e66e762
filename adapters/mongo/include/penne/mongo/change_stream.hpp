#pragma once
// penne::mongo::change_stream: the penne::change_source of one watch scope, a MongoDB
// change stream on a collection, a database or the whole deployment, driven by
// aggregate/getMore over one connection to the member the URI's readPreference selects (the
// primary by default; see topology.hpp).
//
// Each next() returns one server reply's worth of events as views into the reply bytes,
// which are kept in event_batch::storage (the reply frame moves in by swapping buffers,
// so the steady state allocates nothing but what the events vector already holds).
// Resumable errors (network, ResumableChangeStreamError, CursorNotFound, the legacy code
// list) are handled inside next(), as the Change Streams spec says: once per error. The
// replica set is discovered again (from the URI's seeds and the members learned before, so
// a failover to any member is followed) until a suitable server answers (capped backoff, up
// to max_resume_attempts selections), then one aggregate resumes there from the cached
// resume token; if that aggregate fails too, its error surfaces (retryable ones are
// is_retryable, so the caller can reopen from its checkpoint). History loss (286, 280) comes back
// as penne::errc::history_lost; other errors as penne::mongo codes with diagnostics. After an
// invalidate event (the watched collection or database was dropped or renamed) the invalidate is
// delivered and the stream starts again after it (startAfter), so a re-created namespace keeps
// being captured. open() starts after a saved token (resumeAfter), else at
// start_position::start_at (startAtOperationTime, MongoDB 4.0+), else at the current time.
//
// Thread safety: none; one strand, one operation at a time (penne::change_source).
// Cancellation: an operation cancelled through its coroutine completes with
// operation_aborted; the stream is then only good for close(), or open() again.
// Lifetimes: views in a batch live until the next next() on the same batch object.

#include <penne/mongo/commands.hpp>
#include <penne/mongo/connection.hpp>
#include <penne/mongo/dns_client.hpp>
#include <penne/mongo/resume.hpp>
#include <penne/mongo/split_event.hpp>
#include <penne/mongo/uri.hpp>
#include <penne/source.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace penne::mongo {

struct source_options {
    std::string uri = "mongodb://127.0.0.1:27017";
    std::chrono::milliseconds max_await{1000};  // getMore maxTimeMS
    std::int32_t batch_size = 0;                // 0: server default
    // Send the next getMore as soon as a reply arrives, so the server gathers the next
    // batch while the caller processes this one (one request outstanding per stream).
    bool prefetch = true;
    std::chrono::milliseconds connect_timeout{10'000};
    std::chrono::milliseconds socket_timeout{30'000};
    full_document_mode full_document = full_document_mode::server_default;
    before_change_mode full_document_before_change = before_change_mode::server_default;
    bool show_expanded_events = false;
    // Ask the server to split events over 16 MiB ($changeStreamSplitLargeEvent, where the
    // server has it) and reassemble the fragments into one event (split_event.hpp).
    bool split_large_events = true;
    std::vector<std::string> pipeline;             // extra stages, one Extended JSON document each
    std::vector<std::string> include_collections;  // database scope only
    std::vector<std::string> exclude_collections;  // database scope only
    // Reconnection while resuming: attempts per error and the backoff between them.
    int max_resume_attempts = 10;
    std::chrono::milliseconds reconnect_initial{100};
    std::chrono::milliseconds reconnect_max{5'000};
    bool legacy_handshake = false;
    // DNS for mongodb+srv:// (see srv.hpp). `dns_server` ("ip[:port]", [mongodb] dns_server)
    // answers the SRV/TXT lookups and also resolves the hosts they name (so a test DNS server
    // can serve both). Without it, the SRV/TXT lookups go to `system_dns_server` (the first
    // nameserver of /etc/resolv.conf, which the daemon reads) and hosts resolve through the
    // system resolver as usual.
    std::string dns_server;
    std::string system_dns_server;
    std::chrono::milliseconds dns_timeout{2'000};  // per DNS attempt (three attempts)
};

// Options checked and parsed once, shared by every stream of a factory.
struct stream_config {
    source_options options;
    uri_info uri;
    std::vector<document> stages;
    connection_options connection;
    dns_server_options dns;  // for mongodb+srv:// seedlist discovery (uri.srv_host set)
};

// Validates `opts` (URI, durations, stages as Extended JSON documents, collection lists)
// and prepares the shared configuration. Diagnostics name the offending option and never
// contain the password.
error_code prepare(const source_options& opts, stream_config& out, diagnostics& diag);

class change_stream final : public penne::change_source {
public:
    change_stream(boost::asio::any_io_executor ex, watch_scope scope,
                  std::shared_ptr<const stream_config> config);
    ~change_stream() override;

    boost::asio::awaitable<error_code> open(const start_position& from, diagnostics& diag) override;
    boost::asio::awaitable<error_code> next(event_batch& out, diagnostics& diag) override;
    boost::asio::awaitable<void> close() override;

    // The position after the last batch returned (what a resume would start from).
    const resume_token& cached_token() const noexcept { return position_.cached; }
    // How many times the stream resumed after a resumable error.
    std::uint64_t resume_count() const noexcept override { return resumes_; }
    // How many times the stream started again after an invalidate (drop, rename).
    std::uint64_t restarts_after_invalidate() const noexcept { return restarts_after_invalidate_; }
    const watch_scope& scope() const noexcept { return scope_; }
    // "host:port" of the member the stream currently reads from; empty when not connected.
    std::string server_address() const;

private:
    // Selects a server, then starts the stream there (select_server + start).
    boost::asio::awaitable<error_code> establish(diagnostics& diag);
    // Server selection for the URI's read preference; remembers the set's members.
    boost::asio::awaitable<error_code> select(std::unique_ptr<connection>& out, diagnostics& diag);
    // Runs the change stream aggregate on `c` from the current position (once); on success
    // the stream owns the connection.
    boost::asio::awaitable<error_code> start(std::unique_ptr<connection>& c, diagnostics& diag);
    boost::asio::awaitable<error_code> resume(diagnostics& diag);
    boost::asio::awaitable<void> kill_cursor();
    // Writes a getMore for the cursor; its reply is read by next().
    boost::asio::awaitable<error_code> send_get_more(diagnostics& diag);
    // Sends the next getMore ahead of next() (source_options::prefetch); a failure to send
    // is kept for next() to report.
    boost::asio::awaitable<void> prefetch();
    // Every heartbeatFrequencyMS, between two getMores: asks the member what it is now (a
    // cursor outlives an election on its member) and sets relocate_ when it is no longer
    // primary and names the member that is (read preference primary or primaryPreferred).
    boost::asio::awaitable<void> check_role();
    error_code deliver(std::vector<std::uint8_t>& frame, const cursor_view& cursor,
                       event_batch& out, diagnostics& diag);

    boost::asio::any_io_executor ex_;
    watch_scope scope_;
    std::shared_ptr<const stream_config> config_;
    change_stream_spec spec_;
    std::unique_ptr<connection> conn_;
    std::vector<host_port> known_members_;  // the set's hosts, as the last hello named them
    // The URI and connection options this stream uses: config_'s, with the seeds (and the TXT
    // options) of a mongodb+srv:// URI filled in by the first selection.
    uri_info uri_;
    connection_options connection_;
    std::optional<cluster_time> start_at_;  // open()'s start_at, when no token was given
    resume_position position_;
    event_assembler assembler_;      // fragments of a split event not yet complete
    bool user_split_stage_ = false;  // the user's pipeline ends with the split stage
    bool split_refused_ = false;     // the server refused the stage (6.0 before 6.0.9)
    std::int64_t cursor_id_ = 0;
    std::string ns_;
    bool opened_ = false;
    bool has_pending_ = false;   // the aggregate's firstBatch, not yet returned
    error_code prefetch_error_;  // sending the prefetched getMore failed
    std::string prefetch_diag_;
    bool first_after_open_ = false;  // the pending batch is open()'s, not a resume's
    std::vector<std::uint8_t> pending_;
    cursor_view pending_cursor_;  // views into pending_ (kept valid across buffer swaps)
    std::uint64_t resumes_ = 0;
    std::chrono::steady_clock::time_point role_checked_;  // when check_role() last asked
    bool relocate_ = false;          // resume on a member that satisfies the read preference
    resume_token invalidate_token_;  // set when a batch held an invalidate event
    std::uint64_t restarts_after_invalidate_ = 0;
};

class source_factory final : public penne::source_factory {
public:
    explicit source_factory(std::shared_ptr<const stream_config> config)
        : config_(std::move(config)) {}

    // Validates `opts`; on success `out` holds a factory.
    static error_code create(const source_options& opts, std::unique_ptr<source_factory>& out,
                             diagnostics& diag);

    std::unique_ptr<penne::change_source> make(boost::asio::any_io_executor ex,
                                               const watch_scope& scope) override;

private:
    std::shared_ptr<const stream_config> config_;
};

}  // namespace penne::mongo
