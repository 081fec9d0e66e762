#include <penne/formats/jsonl.hpp>
#include <penne/formats/tabular.hpp>

#include "detail/rigatoni.hpp"

#include <string>

namespace penne::formats {
namespace {

// The penne layout: the event as MongoDB sent it.
class jsonl_encoder final : public batch_encoder {
public:
    explicit jsonl_encoder(const jsonl_options& opts) : mode_(opts.mode) {
        buf_.reserve(opts.initial_capacity);
    }

    error_code append(const change_event& ev, diagnostics& diag) override {
        // write_ejson restores the buffer on failure, so a rejected event leaves no trace.
        if (!write_ejson(ev.raw, mode_, buf_)) {
            diag.message = "change event";
            if (!ev.operation.empty()) {
                diag.message += " (";
                diag.message.append(ev.operation);
                diag.message += ")";
            }
            diag.message += " in ";
            if (ev.db.empty()) {
                diag.message += "an unknown namespace";
            } else {
                diag.message.append(ev.db);
                if (!ev.coll.empty()) {
                    diag.message += '.';
                    diag.message.append(ev.coll);
                }
            }
            diag.message += " is not valid BSON (" + std::to_string(ev.raw.size()) +
                            " bytes) and cannot be written as JSON lines";
            return penne::errc::unencodable_event;
        }
        buf_.push_back('\n');
        return {};
    }

    std::size_t buffered_bytes() const noexcept override { return buf_.size(); }
    std::size_t held_bytes() const noexcept override { return buf_.capacity(); }
    void reserve(std::size_t bytes) override { buf_.reserve(bytes); }

    void finish(std::string& out) override {
        out.swap(buf_);
        buf_.clear();
        buf_.shrink_to_fit();
    }

private:
    ejson_mode mode_;
    std::string buf_;
};

// The rigatoni layout: the fields of Rigatoni's ChangeEvent, read through the tabular
// extractor (which validates the whole event before a byte is written, so a rejected event
// leaves the batch unchanged).
class rigatoni_jsonl_encoder final : public batch_encoder {
public:
    explicit rigatoni_jsonl_encoder(const jsonl_options& opts) : extractor_(opts.mode) {
        buf_.reserve(opts.initial_capacity);
    }

    error_code append(const change_event& ev, diagnostics& diag) override {
        tabular_row row;
        if (auto ec = extractor_.extract(ev, row, diag))
            return ec;
        buf_ += R"({"operationType":)";
        detail::append_json_string(detail::rigatoni_serde_operation(row.operation), buf_);
        buf_ += R"(,"ns":{"database":)";
        detail::append_json_string(row.database.value_or(std::string_view()), buf_);
        buf_ += R"(,"collection":)";
        detail::append_json_string(row.collection.value_or(std::string_view()), buf_);
        buf_ += '}';
        document(R"(,"documentKey":)", row.document_key);
        document(R"(,"fullDocument":)", row.full_document);
        if (row.update_description) {
            scratch_.clear();
            detail::append_compact_json(*row.update_description, scratch_);
            buf_ += R"(,"updateDescription":)";
            detail::append_rigatoni_update_description(scratch_, buf_);
        }
        buf_ += R"(,"clusterTime":")";
        detail::append_rigatoni_time(row.cluster_time_seconds, row.cluster_time_increment,
                                     detail::rigatoni_utc_suffix::z, buf_);
        buf_ += R"(","_id":)";
        detail::append_compact_json(row.resume_token, buf_);
        buf_ += "}\n";
        return {};
    }

    std::size_t buffered_bytes() const noexcept override { return buf_.size(); }
    std::size_t held_bytes() const noexcept override { return buf_.capacity(); }
    void reserve(std::size_t bytes) override { buf_.reserve(bytes); }

    void finish(std::string& out) override {
        out.swap(buf_);
        buf_.clear();
        buf_.shrink_to_fit();
    }

private:
    void document(std::string_view member, const std::optional<std::string_view>& json) {
        if (!json)
            return;
        buf_.append(member);
        detail::append_compact_json(*json, buf_);
    }

    tabular_extractor extractor_;
    std::string scratch_;  // the compact updateDescription before it is filtered
    std::string buf_;
};

}  // namespace

error_code validate(const jsonl_options& opts, diagnostics& diag) {
    if (opts.layout != jsonl_layout::penne && opts.layout != jsonl_layout::rigatoni) {
        diag.message = "jsonl.layout must be \"penne\" or \"rigatoni\"";
        return penne::errc::invalid_config;
    }
    if (opts.mode != ejson_mode::relaxed && opts.mode != ejson_mode::canonical) {
        diag.message = "jsonl.json_mode must be \"relaxed\" or \"canonical\"";
        return penne::errc::invalid_config;
    }
    return {};
}

encoder_info jsonl_encoder_factory::info() const noexcept {
    return {"jsonl", "application/x-ndjson", false};
}

std::unique_ptr<batch_encoder> jsonl_encoder_factory::open(std::string_view) const {
    if (opts_.layout == jsonl_layout::rigatoni)
        return std::make_unique<rigatoni_jsonl_encoder>(opts_);
    return std::make_unique<jsonl_encoder>(opts_);
}

}  // namespace penne::formats
