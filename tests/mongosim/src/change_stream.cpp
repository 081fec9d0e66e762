#include "change_stream.hpp"

#include <mongosim/wire.hpp>

#include <algorithm>

namespace mongosim {
namespace {

bool internal_db(const std::string& db) {
    return db == "admin" || db == "config" || db == "local";
}

failure parse_token_option(const bson_iter_t& it, const char* name, token_position& out) {
    bson_iter_t data;
    if (!BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &data) ||
        !bson_iter_find(&data, "_data") || !BSON_ITER_HOLDS_UTF8(&data))
        return cmd_error{260, std::string(name) + " must be a resume token document {_data: ...}"};
    std::uint32_t len;
    const char* s = bson_iter_utf8(&data, &len);
    if (!decode_token({s, len}, out))
        return cmd_error{260, "the resume token was not produced by this server"};
    return {};
}

failure position_stream(const oplog& log, change_stream& cs, std::optional<token_position> resume,
                        bool start_after, std::optional<timestamp> start_at) {
    auto lost = log.truncated_through();
    if (start_at) {
        if (lost && *start_at <= *lost)
            return cmd_error{286,
                             "Resume of change stream was not possible, as the resume point "
                             "may no longer be in the oplog."};
        cs.next_seq = log.seq_at_or_after(*start_at);
        return {};
    }
    if (!resume) {
        cs.next_seq = log.end_seq();
        return {};
    }
    const timestamp ts = resume->ts;
    switch (resume->kind) {
        case token_kind::invalidate:
            if (!start_after)
                return cmd_error{260,
                                 "cannot resume a change stream after an invalidate event; use "
                                 "startAfter to start a new stream"};
            [[fallthrough]];
        case token_kind::high_water:
            if (lost && ts < *lost)
                return cmd_error{286,
                                 "Resume of change stream was not possible, as the resume "
                                 "point may no longer be in the oplog."};
            cs.next_seq = log.seq_after(ts);
            return {};
        case token_kind::event:
            if (lost && ts <= *lost)
                return cmd_error{286,
                                 "Resume of change stream was not possible, as the resume "
                                 "token was not found in the oplog."};
            if (auto seq = log.seq_of(ts, resume->txn_index)) {
                // A fragment's token: go on with the next fragment of the same event. An
                // operation of a transaction: go on with the next operation of the same one.
                cs.next_seq = resume->fragment != 0 ? *seq : *seq + 1;
                cs.fragments_done = resume->fragment;
                return {};
            }
            if (auto last = log.last_ts(); !last || ts > *last) {
                cs.next_seq = log.end_seq();  // a token from the future of this oplog: wait for it
                return {};
            }
            return cmd_error{280, "resume token was not found in the oplog"};
    }
    return cmd_error{260, "unknown resume token kind"};
}

failure parse_stage_options(const bson_iter_t& stage, scope_kind scope, const oplog& log,
                            change_stream& cs) {
    if (!BSON_ITER_HOLDS_DOCUMENT(&stage))
        return cmd_error{50808, "$changeStream stage expects a document as argument"};
    std::optional<token_position> resume;
    bool start_after = false;
    std::optional<timestamp> start_at;
    int resume_options = 0;
    bool all_for_cluster = false;
    bson_iter_t opt;
    bson_iter_recurse(&stage, &opt);
    while (bson_iter_next(&opt)) {
        std::string_view k = key_of(opt);
        if (k == "resumeAfter" || k == "startAfter") {
            token_position pos;
            if (auto f = parse_token_option(opt, bson_iter_key(&opt), pos))
                return f;
            resume = pos;
            start_after = k == "startAfter";
            ++resume_options;
        } else if (k == "startAtOperationTime") {
            if (!BSON_ITER_HOLDS_TIMESTAMP(&opt))
                return cmd_error{14, "startAtOperationTime must be a Timestamp"};
            timestamp ts;
            bson_iter_timestamp(&opt, &ts.t, &ts.i);
            start_at = ts;
            ++resume_options;
        } else if (k == "fullDocument") {
            if (!BSON_ITER_HOLDS_UTF8(&opt))
                return cmd_error{14, "fullDocument must be a string"};
            cs.full_document = bson_iter_utf8(&opt, nullptr);
            if (cs.full_document != "default" && cs.full_document != "updateLookup" &&
                cs.full_document != "whenAvailable" && cs.full_document != "required")
                return cmd_error{2, "unknown fullDocument mode: " + cs.full_document};
        } else if (k == "fullDocumentBeforeChange") {
            if (!BSON_ITER_HOLDS_UTF8(&opt))
                return cmd_error{14, "fullDocumentBeforeChange must be a string"};
            cs.full_document_before_change = bson_iter_utf8(&opt, nullptr);
            if (cs.full_document_before_change != "off" &&
                cs.full_document_before_change != "whenAvailable" &&
                cs.full_document_before_change != "required")
                return cmd_error{2, "unknown fullDocumentBeforeChange mode"};
        } else if (k == "showExpandedEvents") {
            cs.show_expanded = bson_iter_as_bool(&opt);
        } else if (k == "allChangesForCluster") {
            all_for_cluster = bson_iter_as_bool(&opt);
        } else {
            return cmd_error{
                40415, "BSON field '$changeStream." + std::string(k) + "' is an unknown field."};
        }
    }
    if (resume_options > 1)
        return cmd_error{40674,
                         "Only one type of resume option is allowed, but multiple were found."};
    if (all_for_cluster != (scope == scope_kind::deployment))
        return cmd_error{73, scope == scope_kind::deployment
                                 ? "$changeStream on the admin database requires "
                                   "allChangesForCluster: true"
                                 : "allChangesForCluster is only allowed on the admin database"};
    // "required" images are checked event by event (getMore fails with NoMatchingDocument
    // on the first event without one), as on mongod.
    return position_stream(log, cs, resume, start_after, start_at);
}

bool expanded_only(op_type op) {
    return op == op_type::create || op == op_type::create_indexes || op == op_type::drop_indexes ||
           op == op_type::modify;
}

bool in_scope(const change_stream& cs, const event_record& e) {
    if (expanded_only(e.op) && !cs.show_expanded)
        return false;
    switch (cs.scope) {
        case scope_kind::deployment:
            return !internal_db(e.db);
        case scope_kind::database:
            return e.db == cs.db;
        case scope_kind::collection:
            return e.db == cs.db && (e.coll == cs.coll || e.op == op_type::drop_database);
    }
    return false;
}

// Does this event end the stream (after being shown, if it is shown at all)?
bool invalidates(const change_stream& cs, const event_record& e) {
    switch (cs.scope) {
        case scope_kind::deployment:
            return false;
        case scope_kind::database:
            return e.op == op_type::drop_database;
        case scope_kind::collection:
            return e.op == op_type::drop || e.op == op_type::rename ||
                   e.op == op_type::drop_database;
    }
    return false;
}

bool shown(const change_stream& cs, const event_record& e) {
    return !(cs.scope == scope_kind::collection && e.op == op_type::drop_database);
}

void append_ns(bson_t* out, const char* key, const std::string& db, const std::string& coll) {
    bson_t ns;
    bson_append_document_begin(out, key, -1, &ns);
    bson_append_utf8(&ns, "db", 2, db.data(), static_cast<int>(db.size()));
    if (!coll.empty())
        bson_append_utf8(&ns, "coll", 4, coll.data(), static_cast<int>(coll.size()));
    bson_append_document_end(out, &ns);
}

// The image recorded with the event, unless the collection (and its images) is gone.
shared_doc image(const shared_doc& img, const event_record& e, const store& data) {
    if (!img || (e.uuid && data.images_dropped(*e.uuid)))
        return {};
    return img;
}

// mongod's error for a "required" image that is missing: NoMatchingDocument, naming the event.
cmd_error missing_image(const char* which, const char* events, const bson_t& ev) {
    char* json = bson_as_relaxed_extended_json(&ev, nullptr);
    std::string message = std::string("Change stream was configured to require a ") + which +
                          " for all " + events + " events, but the " + which +
                          " was not found for event: " + (json ? json : "{}");
    bson_free(json);
    return cmd_error{47, std::move(message)};
}

bson_ptr render(const change_stream& cs, const event_record& e, store& data, failure& err) {
    bson_ptr ev = make_bson();
    append_token(ev.get(), "_id", event_position(e));
    BSON_APPEND_UTF8(ev.get(), "operationType", op_name(e.op));
    bson_append_timestamp(ev.get(), "clusterTime", 11, e.ts.t, e.ts.i);
    if (cs.show_expanded && e.uuid)
        bson_append_binary(ev.get(), "collectionUUID", 14, BSON_SUBTYPE_UUID, e.uuid->data(), 16);
    bson_append_date_time(ev.get(), "wallTime", 8, e.wall_ms);
    switch (e.op) {
        case op_type::insert:
        case op_type::replace:
            BSON_APPEND_DOCUMENT(ev.get(), "fullDocument", e.full_document.get());
            break;
        case op_type::update:
            if (cs.full_document == "updateLookup") {
                bson_iter_t id;
                shared_doc current;
                collection* c = data.find(e.db, e.coll);
                if (c != nullptr && bson_iter_init_find(&id, e.document_key.get(), "_id"))
                    current = c->find_id(*bson_iter_value(&id));
                if (current)
                    BSON_APPEND_DOCUMENT(ev.get(), "fullDocument", current.get());
                else
                    BSON_APPEND_NULL(ev.get(), "fullDocument");
            } else if (cs.full_document == "whenAvailable" || cs.full_document == "required") {
                // The post-image of this change, not the current document.
                if (shared_doc post = image(e.post_image, e, data)) {
                    BSON_APPEND_DOCUMENT(ev.get(), "fullDocument", post.get());
                } else if (cs.full_document == "required") {
                    err = missing_image("post-image", "update", *ev);
                    return ev;
                } else {
                    BSON_APPEND_NULL(ev.get(), "fullDocument");
                }
            }
            break;
        default:
            break;
    }
    append_ns(ev.get(), "ns", e.db, e.coll);
    if (e.document_key)
        BSON_APPEND_DOCUMENT(ev.get(), "documentKey", e.document_key.get());
    if (e.op == op_type::update)
        BSON_APPEND_DOCUMENT(ev.get(), "updateDescription", e.update_description.get());
    if (e.op == op_type::rename)
        append_ns(ev.get(), "to", e.to_db, e.to_coll);
    if (cs.show_expanded && e.operation_description)
        BSON_APPEND_DOCUMENT(ev.get(), "operationDescription", e.operation_description.get());
    if (cs.show_expanded && e.state_before_change)
        BSON_APPEND_DOCUMENT(ev.get(), "stateBeforeChange", e.state_before_change.get());
    if (e.in_transaction()) {
        BSON_APPEND_DOCUMENT(ev.get(), "lsid", e.lsid.get());
        bson_append_int64(ev.get(), "txnNumber", 9, e.txn_number);
    }
    if (cs.full_document_before_change != "off" &&
        (e.op == op_type::update || e.op == op_type::replace || e.op == op_type::remove)) {
        if (shared_doc pre = image(e.pre_image, e, data)) {
            BSON_APPEND_DOCUMENT(ev.get(), "fullDocumentBeforeChange", pre.get());
        } else if (cs.full_document_before_change == "required") {
            err = missing_image("pre-image", "update, delete and replace", *ev);
            return ev;
        } else {
            BSON_APPEND_NULL(ev.get(), "fullDocumentBeforeChange");
        }
    }
    return ev;
}

// Cuts an event over 16 MiB into fragments as $changeStreamSplitLargeEvent does: top-level
// fields only, smallest first so that the first fragment carries the most of them, each
// fragment led by its own resume token and splitEvent {fragment, of}.
failure split_event(const bson_t& ev, const event_record& e, std::vector<bson_ptr>& out) {
    // The iterators stay in their own vector: bson_iter_t is 128-byte aligned, and sorting
    // values of that alignment draws an ABI note from g++.
    struct field {
        std::size_t index, size, iter;
    };
    std::vector<field> fields;
    std::vector<bson_iter_t> iters;
    bson_iter_t it;
    bson_iter_init(&it, &ev);
    std::size_t index = 0;
    while (bson_iter_next(&it)) {
        if (key_of(it) != "_id") {
            fields.push_back({index, it.next_off - it.off, iters.size()});
            iters.push_back(it);
        }
        ++index;
    }
    // Room for a fragment's header: its length and terminator, the token and splitEvent.
    const std::size_t header =
        5 + 1 + 4 + (4 + 1 + 1 + 6 + 4 + 24 + 1 + 1) + (1 + 11 + 4 + 1 + 9 + 4 + 1 + 3 + 4 + 1);
    const std::size_t budget = static_cast<std::size_t>(max_bson_size) - header;
    std::stable_sort(fields.begin(), fields.end(),
                     [](const field& a, const field& b) { return a.size < b.size; });
    std::vector<std::vector<field>> groups(1);
    std::size_t used = 0;
    for (const auto& f : fields) {
        if (f.size > budget)
            return cmd_error{10334, "BSONObjectTooLarge: the change event's field '" +
                                        std::string(bson_iter_key(&iters[f.iter])) +
                                        "' alone exceeds 16777216 bytes and cannot be split"};
        if (used + f.size > budget) {
            groups.emplace_back();
            used = 0;
        }
        groups.back().push_back(f);
        used += f.size;
    }
    const auto of = static_cast<std::int32_t>(groups.size());
    for (std::int32_t k = 1; k <= of; ++k) {
        auto& g = groups[static_cast<std::size_t>(k - 1)];
        std::sort(g.begin(), g.end(),
                  [](const field& a, const field& b) { return a.index < b.index; });
        bson_ptr frag = make_bson();
        append_token(frag.get(), "_id", event_position(e, static_cast<std::uint32_t>(k)));
        bson_t split;
        BSON_APPEND_DOCUMENT_BEGIN(frag.get(), "splitEvent", &split);
        BSON_APPEND_INT32(&split, "fragment", k);
        BSON_APPEND_INT32(&split, "of", of);
        bson_append_document_end(frag.get(), &split);
        for (auto& f : g)
            append_value(frag.get(), key_of(iters[f.iter]), *bson_iter_value(&iters[f.iter]));
        out.push_back(std::move(frag));
    }
    return {};
}

bson_ptr render_invalidate(timestamp ts, std::int64_t wall_ms) {
    bson_ptr ev = make_bson();
    append_token(ev.get(), "_id", ts, token_kind::invalidate);
    BSON_APPEND_UTF8(ev.get(), "operationType", "invalidate");
    bson_append_timestamp(ev.get(), "clusterTime", 11, ts.t, ts.i);
    bson_append_date_time(ev.get(), "wallTime", 8, wall_ms);
    return ev;
}

// Runs the user stages; false when a $match drops the event or a stage fails (err set).
bool apply_stages(const change_stream& cs, bson_ptr& ev, failure& err) {
    for (const auto& st : cs.stages) {
        if (st.filter) {
            if (!matches(*ev, *st.filter))
                return false;
        } else if (st.reshape) {
            if ((err = apply_reshape_stage(*st.reshape, ev)))
                return false;
        } else {
            bson_ptr projected = apply_projection(*ev, st.proj);
            if (!bson_has_field(projected.get(), "_id")) {
                err = resume_token_modified();
                return false;
            }
            ev = std::move(projected);
        }
    }
    return true;
}

}  // namespace

failure open_change_stream(const bson_t& pipeline, scope_kind scope, const std::string& db,
                           const std::string& coll, oplog& log, change_stream& out) {
    out.scope = scope;
    out.db = db;
    out.coll = coll;
    bson_iter_t st;
    bson_iter_init(&st, &pipeline);
    bool first = true;
    while (bson_iter_next(&st)) {
        bson_iter_t stage;
        if (!BSON_ITER_HOLDS_DOCUMENT(&st) || !bson_iter_recurse(&st, &stage) ||
            !bson_iter_next(&stage))
            return cmd_error{40323,
                             "A pipeline stage specification object must contain exactly "
                             "one field."};
        std::string_view name = key_of(stage);
        if (first) {
            if (auto f = parse_stage_options(stage, scope, log, out))
                return f;
            first = false;
            continue;
        }
        if (name == "$match") {
            bson_t filter;
            if (!view_document(stage, filter) || !BSON_ITER_HOLDS_DOCUMENT(&stage))
                return cmd_error{15959, "the match filter must be an expression in an object"};
            if (auto f = validate_filter(filter))
                return f;
            out.stages.push_back({copy_bson(&filter), {}});
        } else if (name == "$project") {
            bson_t spec;
            if (!BSON_ITER_HOLDS_DOCUMENT(&stage) || !view_document(stage, spec))
                return cmd_error{15969, "$project specification must be an object"};
            stream_stage s;
            if (auto f = parse_projection(spec, s.proj))
                return f;
            // Projecting out _id is accepted here and fails the stream at its first event
            // (apply_stages), as on MongoDB.
            out.stages.push_back(std::move(s));
        } else if (is_reshape_stage(name)) {
            stream_stage s;
            s.reshape.emplace();
            if (auto f = parse_reshape_stage(stage, *s.reshape))
                return f;
            out.stages.push_back(std::move(s));
        } else if (name == "$changeStreamSplitLargeEvent") {
            if (!BSON_ITER_HOLDS_DOCUMENT(&stage))
                return cmd_error{7182800,
                                 "$changeStreamSplitLargeEvent takes an empty object as argument"};
            bson_t spec;
            view_document(stage, spec);
            if (!bson_empty(&spec))
                return cmd_error{7182800,
                                 "$changeStreamSplitLargeEvent takes an empty object as argument"};
            if (out.split_large)
                return cmd_error{7182802,
                                 "$changeStreamSplitLargeEvent can only appear once in a pipeline"};
            out.split_large = true;
            continue;
        } else if (name == "$changeStream") {
            return cmd_error{40602, "$changeStream is only valid as the first stage in a pipeline"};
        } else {
            return cmd_error{40324, "mongosim does not support the stage " + std::string(name) +
                                        " in a change stream (supported: $match, $project, "
                                        "$addFields, $set, $unset, $replaceRoot, $replaceWith, "
                                        "$changeStreamSplitLargeEvent)"};
        }
        if (out.split_large)
            return cmd_error{7182802,
                             "$changeStreamSplitLargeEvent can only appear at the end of a "
                             "change stream pipeline"};
    }
    if (out.fragments_done != 0 && !out.split_large)
        return cmd_error{7182501,
                         "Attempted to resume from a split event, but the resumed stream does "
                         "not have a $changeStreamSplitLargeEvent stage"};
    return {};
}

failure next_batch(change_stream& cs, const oplog& log, store& data, std::size_t max_count,
                   std::size_t max_bytes, batch& out) {
    // Bounds the work of one call when a stream skips a long run of foreign events; the reply
    // then carries a token for the scan point and the client simply asks again.
    constexpr std::size_t max_scan = 200'000;
    std::size_t scanned = 0;
    while (out.events.size() < max_count && !cs.finished) {
        if (cs.pending_invalidate) {
            const timestamp ts = *cs.pending_invalidate;
            auto seq = log.seq_of(ts);
            bson_ptr ev = render_invalidate(ts, seq ? log.at(*seq).wall_ms : 0);
            if (!out.events.empty() && out.bytes + ev->len > max_bytes)
                break;
            out.bytes += ev->len;
            out.events.push_back(std::move(ev));
            out.last = token_position{ts, token_kind::invalidate};
            cs.finished = true;
            break;
        }
        if (cs.next_seq < log.begin_seq())
            return cmd_error{286,
                             "Resume of change stream was not possible, as the resume point "
                             "may no longer be in the oplog."};
        if (cs.next_seq >= log.end_seq()) {
            out.caught_up = true;
            break;
        }
        if (scanned++ == max_scan)
            break;
        const event_record& e = log.at(cs.next_seq);
        if (!in_scope(cs, e)) {
            ++cs.next_seq;
            if (out.events.empty())
                out.last = position_after(e);
            continue;
        }
        bson_ptr ev;
        if (shown(cs, e)) {
            failure err;
            ev = render(cs, e, data, err);
            if (err) {
                if (!out.events.empty())
                    break;  // return what came before; the next batch fails on this event
                return err;
            }
            if (!apply_stages(cs, ev, err))
                ev.reset();
            if (err) {
                if (!out.events.empty())
                    break;  // as for a render error: the next batch fails on this event
                return err;
            }
        }
        if (ev && ev->len > static_cast<std::uint32_t>(max_bson_size)) {
            if (!cs.split_large) {
                if (!out.events.empty())
                    break;
                bson_iter_t id;
                char* json = nullptr;
                if (bson_iter_init_find(&id, ev.get(), "_id")) {
                    bson_t tok;
                    if (view_document(id, tok))
                        json = bson_as_relaxed_extended_json(&tok, nullptr);
                }
                std::string message =
                    "BSONObj size: " + std::to_string(ev->len) +
                    " is invalid. Size must be between 0 and 16793600(16MB) First element: "
                    "_id: " +
                    (json ? json : "{}");
                bson_free(json);
                return cmd_error{10334, std::move(message)};
            }
            std::vector<bson_ptr> fragments;
            if (auto f = split_event(*ev, e, fragments)) {
                if (!out.events.empty())
                    break;
                return f;
            }
            bool stopped = false;
            while (cs.fragments_done < fragments.size()) {
                bson_ptr& frag = fragments[cs.fragments_done];
                if (out.events.size() >= max_count ||
                    (!out.events.empty() && out.bytes + frag->len > max_bytes)) {
                    stopped = true;
                    break;
                }
                out.bytes += frag->len;
                out.events.push_back(std::move(frag));
                ++cs.fragments_done;
                out.last = event_position(e, cs.fragments_done);
            }
            if (stopped)
                break;
            cs.fragments_done = 0;
            ++cs.next_seq;
            if (invalidates(cs, e))
                cs.pending_invalidate = e.ts;
            continue;
        }
        if (cs.fragments_done != 0) {
            // Resumed from a fragment of an event that is no longer split (say, a $project
            // now keeps it small): it was delivered already.
            cs.fragments_done = 0;
            ++cs.next_seq;
            continue;
        }
        if (ev && !out.events.empty() && out.bytes + ev->len > max_bytes)
            break;
        ++cs.next_seq;
        if (invalidates(cs, e))
            cs.pending_invalidate = e.ts;
        if (ev) {
            out.bytes += ev->len;
            out.events.push_back(std::move(ev));
            out.last = event_position(e);
        } else if (out.events.empty()) {
            out.last = position_after(e);
        }
    }
    if (cs.next_seq >= log.end_seq() && !cs.pending_invalidate)
        out.caught_up = true;
    return {};
}

}  // namespace mongosim
