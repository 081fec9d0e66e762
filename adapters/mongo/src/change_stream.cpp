#include <penne/mongo/change_stream.hpp>

#include <ctime>
#include <penne/mongo/srv.hpp>
#include <penne/mongo/tls.hpp>
#include <penne/mongo/topology.hpp>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace penne::mongo {

namespace asio = boost::asio;
using asio::awaitable;

namespace {

error_code invalid(diagnostics& diag, std::string message) {
    diag.message = std::move(message);
    return make_error_code(penne::errc::invalid_config);
}

bool history_lost(const error_code& ec) noexcept {
    return is_server_error(ec) && is_history_lost(ec.value());
}

// "saved position: clusterTime 1733490000.3 (2024-12-06T13:00:00Z)", for history-lost errors:
// the start of the interval whose events are gone.
std::string describe_position(const resume_position& p) {
    std::optional<cluster_time> t;
    if (!p.cached.empty())
        t = token_cluster_time(p.cached.bytes());
    if (!t)
        t = p.operation_time;
    if (!t)
        return "saved position: unknown time";
    const std::time_t secs = static_cast<std::time_t>(t->seconds);
    std::tm utc{};
    gmtime_r(&secs, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return "saved position: clusterTime " + std::to_string(t->seconds) + "." +
           std::to_string(t->increment) + " (" + stamp + ")";
}

}  // namespace

error_code prepare(const source_options& opts, stream_config& out, diagnostics& diag) {
    out = stream_config{};
    out.options = opts;
    diagnostics udiag;
    if (parse_uri(opts.uri, out.uri, udiag)) {
        return invalid(diag, "mongodb.uri: " + udiag.message);
    }
    if (opts.max_await.count() <= 0)
        return invalid(diag, "mongodb.max_await must be positive");
    if (opts.batch_size < 0)
        return invalid(diag, "mongodb.batch_size must not be negative");
    if (opts.connect_timeout.count() <= 0)
        return invalid(diag, "mongodb.connect_timeout must be positive");
    if (opts.socket_timeout.count() <= 0)
        return invalid(diag, "mongodb.socket_timeout must be positive");
    if (opts.max_resume_attempts < 1)
        return invalid(diag, "mongodb.max_resume_attempts must be at least 1");
    if (opts.reconnect_initial.count() <= 0 || opts.reconnect_max < opts.reconnect_initial)
        return invalid(diag, "mongodb reconnect backoff: need 0 < initial <= max");
    if (!opts.include_collections.empty() && !opts.exclude_collections.empty())
        return invalid(diag, "mongodb: give include_collections or exclude_collections, not both");
    for (std::size_t i = 0; i < opts.pipeline.size(); ++i) {
        std::string error;
        auto stage = document::from_json(opts.pipeline[i], error);
        std::string where = "mongodb.pipeline[" + std::to_string(i) + "]";
        if (!stage)
            return invalid(diag, where + " is not valid Extended JSON: " + error);
        bson_iter_t it;
        if (!bson_iter_init(&it, stage->get()) || !bson_iter_next(&it) ||
            bson_iter_key(&it)[0] != '$' || bson_iter_next(&it)) {
            return invalid(diag, where + " must be one stage like {\"$match\": {...}}");
        }
        out.stages.push_back(std::move(*stage));
    }
    out.connection.connect_timeout = opts.connect_timeout;
    out.connection.socket_timeout = opts.socket_timeout;
    out.connection.metadata = client_metadata::from_system(out.uri.app_name);
    out.connection.auth = out.uri.auth;
    out.connection.compressors = out.uri.compressors;
    out.connection.zlib_level = out.uri.zlib_level;
    out.connection.legacy_handshake = opts.legacy_handshake;
    if (!opts.dns_server.empty()) {
        diagnostics ddiag;
        if (parse_dns_server(opts.dns_server, out.dns.server, ddiag))
            return invalid(diag, "mongodb.dns_server: " + ddiag.message);
    } else if (!opts.system_dns_server.empty()) {
        diagnostics ddiag;
        if (parse_dns_server(opts.system_dns_server, out.dns.server, ddiag))
            return invalid(diag, "the system DNS server: " + ddiag.message);
    }
    if (opts.dns_timeout.count() <= 0)
        return invalid(diag, "mongodb.dns_timeout must be positive");
    out.dns.timeout = opts.dns_timeout;
    // With an explicit server, the hosts named by the SRV records resolve through it too.
    if (!opts.dns_server.empty())
        out.connection.dns = std::make_shared<const dns_server_options>(out.dns);
    if (!out.uri.srv_host.empty() && out.dns.server.host.empty()) {
        return invalid(diag,
                       "mongodb.uri is a mongodb+srv:// URI but no DNS server is known: set "
                       "[mongodb] dns_server or a nameserver in /etc/resolv.conf");
    }
    if (out.uri.tls) {
        // The CA and client certificate files are read once, here: a bad file is a
        // configuration error, never a reconnect loop.
        diagnostics tdiag;
        if (tls_context::create(*out.uri.tls, out.connection.tls, tdiag))
            return invalid(diag, "mongodb.uri (" + out.uri.redacted + "): " + tdiag.message);
    }
    return {};
}

change_stream::change_stream(asio::any_io_executor ex, watch_scope scope,
                             std::shared_ptr<const stream_config> config)
    : ex_(std::move(ex)),
      scope_(std::move(scope)),
      config_(std::move(config)),
      uri_(config_->uri),
      connection_(config_->connection) {}

change_stream::~change_stream() = default;

awaitable<error_code> change_stream::open(const start_position& from, diagnostics& diag) {
    const source_options& o = config_->options;
    using level = watch_scope::level;
    if (scope_.kind != level::deployment && scope_.db.empty())
        co_return invalid(diag, "watch scope needs a database name");
    if (scope_.kind == level::collection && scope_.coll.empty())
        co_return invalid(diag, "collection watch scope needs a collection name");
    // The scope's own filters win over the factory-wide ones.
    const bool scope_filters =
        !scope_.include_collections.empty() || !scope_.exclude_collections.empty();
    const auto& include = scope_filters ? scope_.include_collections : o.include_collections;
    const auto& exclude = scope_filters ? scope_.exclude_collections : o.exclude_collections;
    if (scope_.kind == level::collection && (!include.empty() || !exclude.empty()))
        co_return invalid(diag,
                          "include/exclude collection lists apply to database and "
                          "deployment scopes only");
    if (!include.empty() && !exclude.empty())
        co_return invalid(diag, "give include_collections or exclude_collections, not both");

    if (conn_)
        conn_->close();
    conn_.reset();
    opened_ = false;
    has_pending_ = false;
    cursor_id_ = 0;

    spec_ = change_stream_spec{};
    spec_.kind = scope_.kind == level::collection ? change_stream_spec::level::collection
                 : scope_.kind == level::database ? change_stream_spec::level::database
                                                  : change_stream_spec::level::deployment;
    spec_.db = scope_.db;
    spec_.coll = scope_.coll;
    spec_.full_document = o.full_document;
    spec_.full_document_before_change = o.full_document_before_change;
    spec_.show_expanded_events = o.show_expanded_events;
    user_split_stage_ = has_split_stage(config_->stages);
    spec_.batch_size = o.batch_size;
    spec_.include_collections = include;
    spec_.exclude_collections = exclude;
    spec_.extra_stages = config_->stages;

    position_ = resume_position{};
    if (from.resume_after && !from.resume_after->empty())
        position_.cached = *from.resume_after;
    else if (from.start_at)
        position_.operation_time = from.start_at;  // startAtOperationTime (resume.hpp)
    start_at_ = position_.cached.empty() ? from.start_at : std::nullopt;

    error_code ec = co_await establish(diag);
    if (ec)
        co_return ec;
    opened_ = true;
    first_after_open_ = true;
    co_return error_code{};
}

awaitable<error_code> change_stream::establish(diagnostics& diag) {
    if (conn_)
        conn_->close();
    conn_.reset();
    cursor_id_ = 0;
    has_pending_ = false;

    std::unique_ptr<connection> c;
    // g++ 12 miscompiles co_await inside an if condition: keep it a statement.
    error_code ec = co_await select(c, diag);
    if (ec)
        co_return ec;
    ec = co_await start(c, diag);
    co_return ec;
}

awaitable<error_code> change_stream::select(std::unique_ptr<connection>& out, diagnostics& diag) {
    if (uri_.hosts.empty() && !uri_.srv_host.empty()) {
        // mongodb+srv://: the seeds come from DNS, once per stream (a replica set's members
        // are followed through hello from then on).
        uri_info resolved = config_->uri;
        error_code sec = co_await resolve_seedlist(ex_, config_->dns, resolved, diag);
        if (sec)
            co_return sec;
        uri_ = std::move(resolved);
        connection_.auth = uri_.auth;
    }
    const std::span<const host_port> known(known_members_);
    error_code ec =
        co_await select_server(ex_, uri_, uri_.read_preference, known, connection_, out, diag);
    if (ec)
        co_return ec;
    // Remember the set's members: if every seed goes away, they are where to look next.
    if (!out->hello().hosts.empty()) {
        known_members_.clear();
        for (const auto& member : out->hello().hosts) {
            if (auto m = host_port::parse(member))
                known_members_.push_back(std::move(*m));
        }
    }
    co_return error_code{};
}

awaitable<error_code> change_stream::start(std::unique_ptr<connection>& c, diagnostics& diag) {
    conn_.reset();
    cursor_id_ = 0;
    has_pending_ = false;
    prefetch_error_ = {};
    prefetch_diag_.clear();
    const read_mode mode = config_->uri.read_preference;
    // A direct connection to a member that is not primary reads with primaryPreferred (as
    // the server selection rules say), so a secondary serves it.
    if (mode == read_mode::primary)
        spec_.read_preference = config_->uri.direct_connection && !c->hello().writable_primary
                                    ? std::string(to_string(read_mode::primary_preferred))
                                    : std::string();
    else
        spec_.read_preference = std::string(to_string(mode));
    std::int32_t wire = c->hello().max_wire_version;
    if (start_at_ && position_.cached.empty() && wire < wire_version_start_at_operation_time) {
        diag.message = "change stream on " + scope_.id() +
                       ": start_at needs MongoDB 4.0 or later "
                       "(startAtOperationTime); the server's wire version is " +
                       std::to_string(wire);
        co_return make_error_code(penne::errc::invalid_config);
    }
    apply_resume_position(spec_, position_, wire);
    bool no_start_option =
        !spec_.resume_after && !spec_.start_after && !spec_.start_at_operation_time;
    // $changeStreamSplitLargeEvent exists from 7.0 and 6.0.9; both report wire version 17+,
    // so on 6.0.0-6.0.8 the stage is refused (40324) and the stream goes on without it.
    // Every (re)start resends a split event from its first fragment.
    spec_.split_large_events =
        config_->options.split_large_events && !user_split_stage_ && !split_refused_ && wire >= 17;
    assembler_.reset();

    document cmd = make_change_stream_aggregate(spec_);
    command_reply reply;
    error_code ec = co_await c->run_command(cmd.bytes(), pending_, reply, {}, diag);
    if (ec && spec_.split_large_events && is_server_error(ec) && ec.value() == 40324) {
        split_refused_ = true;
        spec_.split_large_events = false;
        cmd = make_change_stream_aggregate(spec_);
        ec = co_await c->run_command(cmd.bytes(), pending_, reply, {}, diag);
    }
    if (ec) {
        diag.message =
            "change stream on " + scope_.id() + " (" + config_->uri.redacted + "): " + diag.message;
        if (history_lost(ec)) {
            diag.message += "; " + describe_position(position_);
            co_return make_error_code(penne::errc::history_lost);
        }
        co_return ec;
    }
    if (!reply.cursor) {
        diag.message = "aggregate reply for " + scope_.id() + " has no cursor";
        co_return make_error_code(client_errc::malformed_reply);
    }
    // Without a token, the first aggregate's operationTime is where a resume starts.
    if (no_start_option && !position_.operation_time && reply.operation_time)
        position_.operation_time = reply.operation_time;
    cursor_id_ = reply.cursor->id;
    ns_ = std::string(reply.cursor->ns);
    pending_cursor_ = *reply.cursor;
    has_pending_ = true;
    conn_ = std::move(c);
    role_checked_ = std::chrono::steady_clock::now();  // selection just asked
    relocate_ = false;
    co_return error_code{};
}

error_code change_stream::deliver(std::vector<std::uint8_t>& frame, const cursor_view& cursor,
                                  event_batch& out, diagnostics& diag) {
    // Swapping moves the heap buffer, so `cursor`'s views now point into out.storage (a
    // frame read into out.storage itself swaps with itself: nothing moves).
    out.storage.swap(frame);
    out.events.clear();
    std::size_t fragments = 0;
    if (auto ec = parse_change_events(cursor.batch, out.events, &fragments)) {
        out.events.clear();
        diag.message = ec == client_errc::missing_resume_token
                           ? "change event on " + scope_.id() +
                                 " has no _id: a pipeline stage removed the resume token"
                           : "malformed change event batch on " + scope_.id();
        return ec;
    }
    // A reply without fragments passes the assembler unchanged unless it is holding part of
    // an event (it then fails the sequence): skip its per-event look-up otherwise.
    if ((spec_.split_large_events || user_split_stage_) &&
        (fragments > 0 || assembler_.assembling())) {
        // Fragments of split events become whole events (or are held for the next reply).
        if (auto ec = assembler_.process(out.events, position_.cached, diag)) {
            out.events.clear();
            diag.message = "change stream on " + scope_.id() + ": " + diag.message;
            return ec;
        }
    }
    if (assembler_.assembling()) {
        // Part of a split event is held back: the position stays before its first fragment.
        out.post_batch_token = assembler_.safe_token();
    } else if (!cursor.post_batch_resume_token.empty()) {
        out.post_batch_token.assign(cursor.post_batch_resume_token);
    } else if (!out.events.empty()) {
        out.post_batch_token.assign(out.events.back().token);
    } else {
        out.post_batch_token = position_.cached;
    }
    if (!out.post_batch_token.empty())
        position_.cached = out.post_batch_token;
    if (!out.events.empty())
        position_.saw_event = true;
    for (const auto& ev : out.events) {
        if (ev.operation == "invalidate")
            invalidate_token_.assign(ev.token);
    }
    cursor_id_ = cursor.id;
    return {};
}

awaitable<error_code> change_stream::next(event_batch& out, diagnostics& diag) {
    out.clear();
    if (!opened_) {
        diag.message = "change stream on " + scope_.id() + " is not open";
        co_return make_error_code(client_errc::not_connected);
    }
    const source_options& o = config_->options;
    for (;;) {
        if (has_pending_) {
            // After open() the aggregate's reply is returned even when empty: its
            // postBatchResumeToken is the stream's starting point, which a fresh consumer
            // must save before any event arrives (or a crash would restart at a later
            // "now"). After a resume an empty first batch is skipped.
            has_pending_ = false;
            const bool first_after_open = std::exchange(first_after_open_, false);
            auto ec = deliver(pending_, pending_cursor_, out, diag);
            // pending_ got the batch's previous buffer in the swap: let it go, rather than
            // keep a third reply buffer until the next open or resume.
            std::vector<std::uint8_t>().swap(pending_);
            if (ec)
                co_return ec;
            if (first_after_open || !out.events.empty()) {
                co_await prefetch();
                co_return error_code{};
            }
        }
        if (cursor_id_ == 0 && !invalidate_token_.empty()) {
            // The collection or database was dropped or renamed: the server closed the
            // stream after an invalidate event (which was delivered). Keep watching the
            // namespace: a new stream starts after the invalidate (startAfter, since
            // resumeAfter refuses an invalidate token).
            position_.cached = invalidate_token_;
            position_.started_after = true;
            position_.saw_event = false;
            invalidate_token_.clear();
            ++restarts_after_invalidate_;
            if (conn_)
                conn_->close();
            conn_.reset();
            error_code ec = co_await establish(diag);
            if (ec)
                co_return ec;
            continue;
        }
        if (cursor_id_ == 0) {
            diag.message = "the server closed the change stream on " + scope_.id();
            co_return make_error_code(client_errc::cursor_closed);
        }
        if (relocate_) {
            // The member no longer satisfies the read preference (an election moved the
            // primary while the cursor lived on): go on from the position on one that does.
            // A resume like any other: nothing delivered is read again, nothing skipped.
            relocate_ = false;
            auto rec = co_await resume(diag);
            if (rec)
                co_return rec;
            continue;
        }
        error_code ec;
        command_reply reply;
        std::int32_t wire = 0;
        if (prefetch_error_) {
            // The prefetched getMore could not be sent (the connection is closed): handle it
            // here, like any failed getMore.
            wire = conn_ ? conn_->hello().max_wire_version : 0;
            ec = std::exchange(prefetch_error_, error_code{});
            diag.message = std::move(prefetch_diag_);
            prefetch_diag_.clear();
        } else if (conn_ && conn_->is_open()) {
            wire = conn_->hello().max_wire_version;
            if (!conn_->awaiting_reply())
                ec = co_await send_get_more(diag);
            // Read straight into the batch's storage: its views died with this call, and the
            // frame reader keeps the old buffer in exchange, so a busy scope holds two reply
            // buffers (the one being read and the one being routed), not a third idle one.
            if (!ec)
                ec = co_await conn_->receive(out.storage, reply, o.max_await, diag);
            if (!ec) {
                if (!reply.cursor) {
                    diag.message = "getMore reply for " + scope_.id() + " has no cursor";
                    co_return make_error_code(client_errc::malformed_reply);
                }
                error_code dec = deliver(out.storage, *reply.cursor, out, diag);
                if (!dec) {
                    co_await check_role();
                    if (!relocate_)
                        co_await prefetch();
                }
                co_return dec;
            }
        } else {
            ec = make_error_code(client_errc::connection_closed);
        }
        switch (decide_resume(ec, is_server_error(ec) ? &reply : nullptr, wire)) {
            case resume_decision::history_lost:
                diag.message = "change stream on " + scope_.id() + ": " + diag.message + "; " +
                               describe_position(position_);
                co_return make_error_code(penne::errc::history_lost);
            case resume_decision::fail:
                co_return ec;
            case resume_decision::resume:
                break;
        }
        // g++ 12 miscompiles co_await inside an if condition: keep it a statement.
        auto rec = co_await resume(diag);
        if (rec)
            co_return rec;
    }
}

std::string change_stream::server_address() const {
    return conn_ && conn_->is_open() ? conn_->peer().to_string() : std::string();
}

awaitable<error_code> change_stream::resume(diagnostics& diag) {
    ++resumes_;
    // After a server-side error the old cursor may still live there: kill it.
    if (conn_ && conn_->is_open() && cursor_id_ != 0)
        co_await kill_cursor();
    if (conn_)
        conn_->close();
    conn_.reset();
    cursor_id_ = 0;

    // Server selection: rediscover the set until a suitable member answers (a failover
    // may leave it without a primary for a moment).
    const source_options& o = config_->options;
    backoff delay(o.reconnect_initial, o.reconnect_max);
    std::unique_ptr<connection> c;
    error_code ec;
    for (int attempt = 0; attempt < o.max_resume_attempts; ++attempt) {
        if (attempt > 0) {
            asio::steady_timer timer(ex_, delay.next());
            auto [tec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
            if (tec)
                co_return tec;
        }
        diagnostics d;
        ec = co_await select(c, d);
        if (!ec)
            break;
        diag.message = "resuming change stream on " + scope_.id() + " (server selection " +
                       std::to_string(attempt + 1) + "): " + d.message;
        if (ec == asio::error::operation_aborted || ec == penne::errc::cancelled)
            co_return ec;
        if (!is_retryable(ec))
            co_return ec;
    }
    if (ec)
        co_return ec;
    // The one resume attempt for this error.
    diagnostics d;
    ec = co_await start(c, d);
    if (ec)
        diag.message = "resuming change stream on " + scope_.id() + ": " + d.message;
    co_return ec;
}

awaitable<error_code> change_stream::send_get_more(diagnostics& diag) {
    const source_options& o = config_->options;
    document cmd = make_get_more(cursor_id_, ns_, o.max_await, o.batch_size);
    error_code ec = co_await conn_->send(cmd.bytes(), diag);
    co_return ec;
}

awaitable<void> change_stream::prefetch() {
    if (!config_->options.prefetch || !conn_ || !conn_->is_open() || conn_->awaiting_reply() ||
        cursor_id_ == 0 || !invalidate_token_.empty())
        co_return;
    // The server gathers the next batch while the caller processes this one. Nothing is
    // lost if the reply is never read (close, a crash): its events were not delivered, so
    // the position has not moved past them.
    diagnostics diag;
    error_code ec = co_await send_get_more(diag);
    if (ec) {
        prefetch_error_ = ec;
        prefetch_diag_ = std::move(diag.message);
    }
}

awaitable<void> change_stream::check_role() {
    const auto now = std::chrono::steady_clock::now();
    const read_mode mode = uri_.read_preference;
    // Secondary modes stay where they are: moving needs a healthy secondary, which only a
    // selection can tell, and a stream that cannot find one must not stop for it.
    if (uri_.direct_connection ||
        (mode != read_mode::primary && mode != read_mode::primary_preferred) || !conn_ ||
        !conn_->is_open() || conn_->awaiting_reply() || cursor_id_ == 0 ||
        now - role_checked_ < uri_.heartbeat_frequency)
        co_return;
    role_checked_ = now;
    document cmd = make_role_check(!conn_->hello().hello_ok);
    std::vector<std::uint8_t> frame;
    command_reply reply;
    diagnostics ignored;
    // A failure here (a broken connection) fails the next getMore, which resumes.
    error_code ec = co_await conn_->run_command(cmd.bytes(), frame, reply, {}, ignored);
    hello_reply h;
    if (ec || parse_hello(reply.body, h))
        co_return;
    // No longer primary, and it names the member that is: move there.
    relocate_ = !h.writable_primary && !h.primary.empty() && h.primary != h.me;
}

awaitable<void> change_stream::kill_cursor() {
    if (!conn_ || !conn_->is_open() || cursor_id_ == 0 || ns_.empty())
        co_return;
    std::vector<std::uint8_t> frame;
    command_reply reply;
    diagnostics ignored;
    if (conn_->awaiting_reply()) {
        // A prefetched getMore is out: its reply comes first (within maxTimeMS), and its
        // events are dropped (never delivered, so read again after the next open).
        co_await conn_->receive(frame, reply, config_->options.max_await, ignored);
        if (!conn_->is_open()) {
            cursor_id_ = 0;
            co_return;
        }
    }
    std::int64_t ids[] = {cursor_id_};
    document cmd = make_kill_cursors(ns_, ids);
    co_await conn_->run_command(cmd.bytes(), frame, reply, {}, ignored);
    cursor_id_ = 0;
}

awaitable<void> change_stream::close() {
    co_await kill_cursor();
    if (conn_)
        conn_->close();
    conn_.reset();
    cursor_id_ = 0;
    opened_ = false;
    has_pending_ = false;
    prefetch_error_ = {};
    prefetch_diag_.clear();
}

error_code source_factory::create(const source_options& opts, std::unique_ptr<source_factory>& out,
                                  diagnostics& diag) {
    auto config = std::make_shared<stream_config>();
    if (auto ec = prepare(opts, *config, diag))
        return ec;
    out = std::make_unique<source_factory>(std::move(config));
    return {};
}

std::unique_ptr<penne::change_source> source_factory::make(asio::any_io_executor ex,
                                                           const watch_scope& scope) {
    return std::make_unique<change_stream>(std::move(ex), scope, config_);
}

}  // namespace penne::mongo
