#include <penne/mongo/bson.hpp>

#include <cstring>

namespace penne::mongo {

document::document(byte_view bytes) : doc_(nullptr) {
    bson_t* b = is_document(bytes) ? bson_new_from_data(bytes.data(), bytes.size()) : nullptr;
    doc_ = b ? b : bson_new();
}

std::optional<document> document::from_json(std::string_view json, std::string& error) {
    bson_error_t err;
    bson_t* b = bson_new_from_json(reinterpret_cast<const std::uint8_t*>(json.data()),
                                   static_cast<ssize_t>(json.size()), &err);
    if (!b) {
        error = err.message;
        return std::nullopt;
    }
    document d;
    bson_destroy(d.doc_);
    d.doc_ = b;
    return d;
}

std::string document::to_json() const {
    return mongo::to_json(bytes());
}

std::string to_json(byte_view doc) {
    bson_t view;
    if (!is_document(doc) || !bson_init_static(&view, doc.data(), doc.size()))
        return "<invalid BSON>";
    std::size_t len = 0;
    char* s = bson_as_relaxed_extended_json(&view, &len);
    if (!s)
        return "<invalid BSON>";
    std::string out(s, len);
    bson_free(s);
    return out;
}

bool is_document(byte_view bytes) noexcept {
    if (bytes.size() < 5)
        return false;
    std::uint32_t len = std::uint32_t(bytes[0]) | std::uint32_t(bytes[1]) << 8 |
                        std::uint32_t(bytes[2]) << 16 | std::uint32_t(bytes[3]) << 24;
    return len == bytes.size() && bytes.back() == 0;
}

bool find_field(byte_view doc, std::string_view key, bson_iter_t& it) noexcept {
    if (!is_document(doc))
        return false;
    if (!bson_iter_init_from_data(&it, doc.data(), doc.size()))
        return false;
    return bson_iter_find_w_len(&it, key.data(), static_cast<int>(key.size()));
}

std::optional<std::string_view> as_string(const bson_iter_t& it) noexcept {
    if (!BSON_ITER_HOLDS_UTF8(&it))
        return std::nullopt;
    std::uint32_t len = 0;
    const char* s = bson_iter_utf8(&it, &len);
    return std::string_view(s, len);
}

std::optional<byte_view> as_document(const bson_iter_t& it) noexcept {
    std::uint32_t len = 0;
    const std::uint8_t* data = nullptr;
    if (BSON_ITER_HOLDS_DOCUMENT(&it)) {
        bson_iter_document(&it, &len, &data);
    } else if (BSON_ITER_HOLDS_ARRAY(&it)) {
        bson_iter_array(&it, &len, &data);
    } else {
        return std::nullopt;
    }
    if (!data)
        return std::nullopt;
    return byte_view(data, len);
}

std::optional<std::int64_t> as_integer(const bson_iter_t& it) noexcept {
    switch (bson_iter_type(&it)) {
        case BSON_TYPE_INT32:
            return bson_iter_int32(&it);
        case BSON_TYPE_INT64:
            return bson_iter_int64(&it);
        case BSON_TYPE_DOUBLE: {
            double d = bson_iter_double(&it);
            if (!(d >= -9.2e18 && d <= 9.2e18))
                return std::nullopt;
            return static_cast<std::int64_t>(d);
        }
        default:
            return std::nullopt;
    }
}

std::optional<bool> as_truthy(const bson_iter_t& it) noexcept {
    switch (bson_iter_type(&it)) {
        case BSON_TYPE_BOOL:
            return bson_iter_bool(&it);
        case BSON_TYPE_INT32:
            return bson_iter_int32(&it) != 0;
        case BSON_TYPE_INT64:
            return bson_iter_int64(&it) != 0;
        case BSON_TYPE_DOUBLE:
            return bson_iter_double(&it) != 0.0;
        default:
            return std::nullopt;
    }
}

void append_document(bson_t* parent, std::string_view key, byte_view value) {
    bson_t child;
    if (is_document(value) && bson_init_static(&child, value.data(), value.size())) {
        bson_append_document(parent, key.data(), static_cast<int>(key.size()), &child);
    }
}

}  // namespace penne::mongo
