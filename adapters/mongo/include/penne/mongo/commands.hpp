#pragma once
// Command documents penne sends (hello, aggregate with $changeStream, getMore,
// killCursors, endSessions, SCRAM's saslStart/saslContinue) and the decoding of their
// replies into views. Pure functions: no I/O, no clock.
//
// Reply views (command_reply, cursor_view, change_event) point into the reply frame and
// are valid as long as that buffer is alive and unmodified.
//
// Thread safety: none needed; everything here is a value or a pure function.

#include <penne/event.hpp>
#include <penne/mongo/bson.hpp>
#include <penne/mongo/error.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace penne::mongo {

// ---- hello -----------------------------------------------------------------------------

struct client_metadata {
    std::string driver_name = "penne";
    std::string driver_version;
    std::string os_type;  // "Linux", …
    std::string os_name;
    std::string architecture;
    std::string platform;
    std::string app_name;  // from appName=; omitted when empty

    // Fills driver_version and the os fields from the running system (uname).
    static client_metadata from_system(std::string app_name = {});
};

// The three handshake forms: `hello` over OP_MSG (servers 4.4.2+), `isMaster` over OP_MSG
// (older servers answer "no such command" to hello), and `isMaster` over legacy OP_QUERY
// on admin.$cmd (which must not carry $db). All ask for helloOk. `sasl_supported_user`
// ("db.user") asks for saslSupportedMechs; `compression` lists the compressor names the
// client offers, in its order of preference (omitted when empty); `speculative_auth` is a
// saslStart document sent inside hello (speculativeAuthenticate, omitted when empty).
enum class hello_form { hello, is_master, legacy_query };
document make_hello(const client_metadata& meta, hello_form form,
                    std::string_view sasl_supported_user = {},
                    std::span<const std::string> compression = {}, byte_view speculative_auth = {});

// A hello after the handshake (no client metadata, which a server refuses to change): what
// a member is now (primary, secondary) and which member is primary. `is_master` for servers
// that did not answer the handshake with helloOk (before 4.4.2: no hello command).
document make_role_check(bool is_master);

// ---- change streams --------------------------------------------------------------------

enum class full_document_mode { server_default, update_lookup, when_available, required };
std::string_view to_string(full_document_mode m) noexcept;
std::optional<full_document_mode> parse_full_document_mode(std::string_view s) noexcept;

// fullDocumentBeforeChange: the document's pre-image on update, replace and delete events
// (servers 6.0+, collections with changeStreamPreAndPostImages enabled). server_default sends
// nothing (the server's "off").
enum class before_change_mode { server_default, off, when_available, required };
std::string_view to_string(before_change_mode m) noexcept;
std::optional<before_change_mode> parse_before_change_mode(std::string_view s) noexcept;

struct change_stream_spec {
    enum class level { collection, database, deployment };
    level kind = level::collection;
    std::string db;    // ignored for deployment (admin is used)
    std::string coll;  // collection level only

    // Start point; at most one of the three is used, in this order of precedence.
    std::optional<resume_token> resume_after;
    std::optional<resume_token> start_after;
    std::optional<cluster_time> start_at_operation_time;

    full_document_mode full_document = full_document_mode::server_default;
    before_change_mode full_document_before_change = before_change_mode::server_default;
    bool show_expanded_events = false;  // sent only when true
    // Appends {$changeStreamSplitLargeEvent: {}} as the last stage (after extra_stages).
    bool split_large_events = false;
    std::int32_t batch_size = 0;  // 0: server default
    // Database level: collections to keep or drop, as a $match on ns.coll. Events without
    // a collection (dropDatabase, invalidate) always pass, since they concern every
    // collection.
    std::vector<std::string> include_collections;
    std::vector<std::string> exclude_collections;
    std::vector<document> extra_stages;  // appended after the $changeStream stage
    // $readPreference mode sent with the aggregate ("secondary", "primaryPreferred", …);
    // empty: none (primary). A secondary serves the stream only when it is not primary.
    std::string read_preference;
};

document make_change_stream_aggregate(const change_stream_spec& spec);

// getMore on `ns` ("db.coll" as the cursor reply names it).
document make_get_more(std::int64_t cursor_id, std::string_view ns,
                       std::chrono::milliseconds max_time, std::int32_t batch_size);
document make_kill_cursors(std::string_view ns, std::span<const std::int64_t> cursor_ids);
// endSessions with the given lsid documents ({id: UUID}).
document make_end_sessions(std::span<const byte_view> session_ids);

// Splits "db.coll" at the first dot; coll may itself contain dots.
std::pair<std::string_view, std::string_view> split_namespace(std::string_view ns) noexcept;

// ---- replies ---------------------------------------------------------------------------

struct cursor_view {
    std::int64_t id = 0;
    std::string_view ns;
    byte_view batch;  // the firstBatch / nextBatch array document
    bool first_batch = false;
    byte_view post_batch_resume_token;  // empty when the server sent none
};

struct command_reply {
    byte_view body;
    bool ok = false;
    std::string_view errmsg;
    std::int32_t code = 0;
    std::string_view code_name;
    byte_view error_labels;  // array document, empty when absent
    std::optional<cursor_view> cursor;
    std::optional<cluster_time> operation_time;

    bool has_error_label(std::string_view label) const noexcept;
};

// Decodes the fields above from a reply body. Fails only when the body is not a
// document or `ok` is missing; a `cursor` of the wrong shape is malformed_reply.
error_code parse_reply(byte_view body, command_reply& out);

// The parts of a hello reply that connection and topology logic use (copied: the
// handshake is not on the hot path).
struct hello_reply {
    bool writable_primary = false;
    bool secondary = false;
    bool hello_ok = false;
    std::string set_name;
    std::string primary;  // "host:port" as the server names the primary
    std::string me;
    std::vector<std::string> hosts;
    std::int32_t min_wire_version = 0;
    std::int32_t max_wire_version = 0;
    std::int32_t max_message_size = 48'000'000;
    std::int32_t max_bson_object_size = 16 * 1024 * 1024;
    std::vector<std::string> sasl_supported_mechs;
    std::vector<std::string> compression;  // the offered compressors the server accepted
    // The server's answer to speculativeAuthenticate (a saslStart reply); empty when the
    // server ignored it or the speculative start failed.
    std::vector<std::uint8_t> speculative_authenticate;
};

error_code parse_hello(byte_view body, hello_reply& out);

// Decodes one change event document into views. Fails with missing_resume_token when
// `_id` is absent or not a document, malformed_reply for other structural problems.
error_code parse_change_event(byte_view doc, change_event& out);

// Appends every event of a batch array to `out` (whose capacity is reused). With
// `split_events`, also counts the events that carry a top-level splitEvent field (fragments
// of $changeStreamSplitLargeEvent), so a reply without any skips the assembler.
error_code parse_change_events(byte_view batch_array, std::vector<change_event>& out,
                               std::size_t* split_events = nullptr);

}  // namespace penne::mongo
