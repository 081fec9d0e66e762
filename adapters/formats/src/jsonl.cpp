#include <penne/formats/jsonl.hpp>

#include <string>

namespace penne::formats {
namespace {

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

    void finish(std::string& out) override {
        out.swap(buf_);
        buf_.clear();
        buf_.shrink_to_fit();
    }

private:
    ejson_mode mode_;
    std::string buf_;
};

}  // namespace

encoder_info jsonl_encoder_factory::info() const noexcept {
    return {"jsonl", "application/x-ndjson", false};
}

std::unique_ptr<batch_encoder> jsonl_encoder_factory::open(std::string_view) const {
    return std::make_unique<jsonl_encoder>(opts_);
}

}  // namespace penne::formats
