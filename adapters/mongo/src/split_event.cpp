#include <penne/mongo/split_event.hpp>

#include <penne/mongo/commands.hpp>
#include <penne/mongo/error.hpp>

#include <string>
#include <string_view>

namespace penne::mongo {
namespace {

error_code sequence_error(diagnostics& diag, std::string message) {
    diag.message = "$changeStreamSplitLargeEvent: " + std::move(message);
    return make_error_code(client_errc::malformed_reply);
}

std::string_view key_of(const bson_iter_t& it) {
    return {bson_iter_key(&it), bson_iter_key_len(&it)};
}

}  // namespace

std::optional<split_info> find_split_info(byte_view event) noexcept {
    bson_iter_t it;
    if (!find_field(event, "splitEvent", it))
        return std::nullopt;
    auto doc = as_document(it);
    if (!doc || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return std::nullopt;
    split_info info;
    bson_iter_t f;
    if (find_field(*doc, "fragment", f))
        info.fragment = static_cast<std::int32_t>(as_integer(f).value_or(0));
    if (find_field(*doc, "of", f))
        info.of = static_cast<std::int32_t>(as_integer(f).value_or(0));
    return info;
}

bool has_split_stage(std::span<const document> stages) noexcept {
    for (const auto& stage : stages) {
        bson_iter_t it;
        if (bson_iter_init(&it, stage.get()) && bson_iter_next(&it) &&
            key_of(it) == "$changeStreamSplitLargeEvent")
            return true;
    }
    return false;
}

std::size_t event_assembler::buffered_bytes() const noexcept {
    std::size_t n = 0;
    for (const auto& p : parts_)
        n += p.size();
    return n;
}

void event_assembler::reset() noexcept {
    parts_.clear();
    of_ = 0;
    safe_.clear();
}

error_code event_assembler::process(std::vector<change_event>& events, const resume_token& before,
                                    diagnostics& diag) {
    whole_.clear();
    std::size_t kept = 0;
    for (std::size_t i = 0; i < events.size(); ++i) {
        const change_event ev = events[i];
        const auto info = find_split_info(ev.raw);
        if (!info) {
            if (of_ != 0) {
                const auto got = parts_.size();
                reset();
                return sequence_error(diag, "a whole event arrived after fragment " +
                                                std::to_string(got) + " of a split event");
            }
            events[kept++] = ev;
            continue;
        }
        if (info->of < 1 || info->fragment < 1 || info->fragment > info->of) {
            reset();
            return sequence_error(diag, "splitEvent {fragment: " + std::to_string(info->fragment) +
                                            ", of: " + std::to_string(info->of) +
                                            "} is not a valid fragment");
        }
        if (info->fragment == 1) {
            // A new sequence (or the same event again after a resume): the position to hold
            // is the one before its first fragment.
            if (of_ == 0)
                safe_ = kept > 0 ? resume_token(events[kept - 1].token) : before;
            parts_.clear();
            of_ = info->of;
        } else if (of_ == 0 || info->of != of_ ||
                   static_cast<std::size_t>(info->fragment) != parts_.size() + 1) {
            const std::string held = std::to_string(parts_.size());
            reset();
            return sequence_error(diag, "fragment " + std::to_string(info->fragment) + " of " +
                                            std::to_string(info->of) + " arrived after " + held +
                                            " fragment(s): the stream did not start at the "
                                            "event's first fragment");
        }
        parts_.emplace_back(ev.raw.begin(), ev.raw.end());
        if (info->fragment == of_) {
            change_event whole;
            if (auto ec = complete(whole, diag)) {
                reset();
                return ec;
            }
            events[kept++] = whole;
            reset();
        }
    }
    events.resize(kept);
    return {};
}

error_code event_assembler::complete(change_event& out, diagnostics& diag) {
    struct field {
        std::string_view key;
        bson_iter_t it;
        bool used = false;
    };
    std::vector<field> fields;
    for (const auto& part : parts_) {
        bson_iter_t it;
        if (!bson_iter_init_from_data(&it, part.data(), part.size()))
            return sequence_error(diag, "a fragment is not a BSON document");
        while (bson_iter_next(&it)) {
            const std::string_view key = key_of(it);
            if (key == "_id" || key == "splitEvent")
                continue;
            for (const auto& f : fields) {
                if (f.key == key)
                    return sequence_error(
                        diag, "field '" + std::string(key) + "' appears in two fragments");
            }
            fields.push_back({key, it});
        }
    }
    document whole;
    bson_iter_t id;
    const auto& last = parts_.back();
    if (!find_field(last, "_id", id))
        return make_error_code(client_errc::missing_resume_token);
    bson_append_iter(whole.get(), "_id", 3, &id);
    // The fields in the order of an unsplit event (the server packs fragments by size), then
    // any others in arrival order.
    static constexpr std::string_view order[] = {"operationType",
                                                 "clusterTime",
                                                 "txnNumber",
                                                 "lsid",
                                                 "collectionUUID",
                                                 "wallTime",
                                                 "fullDocument",
                                                 "ns",
                                                 "documentKey",
                                                 "updateDescription",
                                                 "to",
                                                 "operationDescription",
                                                 "stateBeforeChange",
                                                 "fullDocumentBeforeChange"};
    auto append = [&](field& f) {
        bson_append_iter(whole.get(), f.key.data(), static_cast<int>(f.key.size()), &f.it);
        f.used = true;
    };
    for (std::string_view name : order) {
        for (auto& f : fields) {
            if (!f.used && f.key == name)
                append(f);
        }
    }
    for (auto& f : fields) {
        if (!f.used)
            append(f);
    }
    const byte_view bytes = whole.bytes();
    whole_.emplace_back(bytes.begin(), bytes.end());
    const auto& stored = whole_.back();
    return parse_change_event({stored.data(), stored.size()}, out);
}

}  // namespace penne::mongo
