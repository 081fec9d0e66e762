#include <penne/mongo/resume.hpp>

#include <boost/asio/error.hpp>

#include <algorithm>

namespace penne::mongo {

std::optional<cluster_time> token_cluster_time(byte_view token) noexcept {
    bson_iter_t it;
    if (!is_document(token) || !bson_iter_init_from_data(&it, token.data(), token.size()) ||
        !bson_iter_find(&it, "_data") || !BSON_ITER_HOLDS_UTF8(&it))
        return std::nullopt;
    std::uint32_t len = 0;
    const char* hex = bson_iter_utf8(&it, &len);
    if (len < 18 || hex[0] != '8' || hex[1] != '2')
        return std::nullopt;
    std::uint64_t ts = 0;
    for (int i = 2; i < 18; ++i) {
        const char c = hex[i];
        const int v = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
        if (v < 0)
            return std::nullopt;
        ts = (ts << 4) | static_cast<std::uint64_t>(v);
    }
    return cluster_time{static_cast<std::uint32_t>(ts >> 32),
                        static_cast<std::uint32_t>(ts & 0xffffffffu)};
}

bool is_history_lost(std::int32_t code) noexcept {
    return code == server_code::change_stream_history_lost ||
           code == server_code::change_stream_fatal;
}

resume_decision decide_resume(const error_code& ec, const command_reply* reply,
                              std::int32_t max_wire_version) noexcept {
    if (!ec)
        return resume_decision::fail;
    if (ec == boost::asio::error::operation_aborted || ec == penne::errc::cancelled)
        return resume_decision::fail;
    if (ec.category() == error_category()) {
        if (ec.value() > 0) {
            std::int32_t code = ec.value();
            if (is_history_lost(code))
                return resume_decision::history_lost;
            if (code == server_code::cursor_not_found)
                return resume_decision::resume;
            if (reply && reply->has_error_label("NonResumableChangeStreamError"))
                return resume_decision::fail;
            if (max_wire_version >= wire_version_resumable_label) {
                return reply && reply->has_error_label("ResumableChangeStreamError")
                           ? resume_decision::resume
                           : resume_decision::fail;
            }
            return is_legacy_resumable_code(code) ? resume_decision::resume : resume_decision::fail;
        }
        // Client-side: only a dropped connection is a network error; malformed bytes are
        // a protocol problem a resume would only repeat.
        return ec == client_errc::connection_closed ? resume_decision::resume
                                                    : resume_decision::fail;
    }
    if (ec == penne::errc::timeout)
        return resume_decision::resume;
    if (ec.category() == penne::penne_category())
        return resume_decision::fail;
    // Socket-level errors (system, asio misc categories) are network errors.
    return resume_decision::resume;
}

void apply_resume_position(change_stream_spec& spec, const resume_position& pos,
                           std::int32_t max_wire_version) {
    spec.resume_after.reset();
    spec.start_after.reset();
    spec.start_at_operation_time.reset();
    if (!pos.cached.empty()) {
        if (pos.started_after && !pos.saw_event) {
            spec.start_after = pos.cached;
        } else {
            spec.resume_after = pos.cached;
        }
    } else if (pos.operation_time && max_wire_version >= wire_version_start_at_operation_time) {
        spec.start_at_operation_time = pos.operation_time;
    }
}

std::chrono::milliseconds backoff::next() noexcept {
    auto d = initial_;
    for (int i = 0; i < attempt_ && d < max_; ++i)
        d *= 2;
    ++attempt_;
    return std::min(d, max_);
}

}  // namespace penne::mongo
