#pragma once
// Small helpers over libbson: an owned document for building commands, and bounds-checked
// lookups into documents that live in someone else's buffer (a reply frame). Lookups
// return views into that buffer; nothing is copied. libbson's iterator validates every
// element length against the document, so malformed bytes give "not found", never UB.
//
// Thread safety: a document is a plain value; views are valid while their buffer lives.

#include <penne/event.hpp>

#include <bson/bson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace penne::mongo {

// An owned, growable BSON document (heap bson_t, so moves are pointer moves).
class document {
public:
    document() : doc_(bson_new()) {}
    explicit document(byte_view bytes);  // copies; empty document when `bytes` is not BSON
    document(document&& o) noexcept : doc_(o.doc_) { o.doc_ = nullptr; }
    document& operator=(document&& o) noexcept {
        std::swap(doc_, o.doc_);
        return *this;
    }
    document(const document& o) : doc_(bson_copy(o.get())) {}
    document& operator=(const document& o) {
        if (this != &o) {
            bson_t* copy = bson_copy(o.get());
            if (doc_)
                bson_destroy(doc_);
            doc_ = copy;
        }
        return *this;
    }
    ~document() {
        if (doc_)
            bson_destroy(doc_);
    }

    // A moved-from document must only be destroyed or assigned to.
    bson_t* get() noexcept { return doc_; }
    const bson_t* get() const noexcept { return doc_; }
    byte_view bytes() const noexcept { return {bson_get_data(doc_), doc_->len}; }

    // Parses MongoDB Extended JSON (canonical or relaxed). On failure returns nullopt and
    // sets `error` to libbson's explanation.
    static std::optional<document> from_json(std::string_view json, std::string& error);
    // Relaxed Extended JSON, for diagnostics and tests (not for the hot path).
    std::string to_json() const;

private:
    // A raw pointer: bson_t's alignment attribute makes unique_ptr<bson_t> warn.
    bson_t* doc_;
};

// Relaxed Extended JSON of a document held in a buffer; "<invalid BSON>" when malformed.
std::string to_json(byte_view doc);

// True when `bytes` is exactly one BSON document whose framing (length prefix, trailing
// NUL) is consistent. Element contents are checked lazily by the iterator.
bool is_document(byte_view bytes) noexcept;

// Positions `it` on the top-level field `key` of `doc`. False when absent or malformed.
bool find_field(byte_view doc, std::string_view key, bson_iter_t& it) noexcept;

// Field accessors on a positioned iterator; nullopt when the type does not match.
std::optional<std::string_view> as_string(const bson_iter_t& it) noexcept;
std::optional<byte_view> as_document(const bson_iter_t& it) noexcept;    // also arrays
std::optional<std::int64_t> as_integer(const bson_iter_t& it) noexcept;  // int32/int64/double
std::optional<bool> as_truthy(const bson_iter_t& it) noexcept;           // bool or any number

// Appends the sub-document `value` under `key` (value must be a valid document).
void append_document(bson_t* parent, std::string_view key, byte_view value);

}  // namespace penne::mongo
