#include <penne/formats/tabular.hpp>

#include <penne/detail/bson_layout.hpp>

#include <cstring>
#include <iterator>

namespace penne::formats {
namespace {

using penne::detail::bson_cstring_size;
using penne::detail::bson_le32;
using penne::detail::bson_le64;
using penne::detail::bson_string_size;
using penne::detail::bson_value_size;
constexpr std::size_t npos = penne::detail::bson_npos;

// Valid UTF-8 without NUL (shortest forms, no surrogates, at most U+10FFFF).
bool valid_text(std::string_view s) noexcept {
    const auto* p = reinterpret_cast<const std::uint8_t*>(s.data());
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n) {
        const std::uint8_t c = p[i];
        if (c >= 0x01 && c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len;
        std::uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;  // NUL, continuation byte, overlong lead or beyond U+10FFFF
        }
        if (n - i < len)
            return false;
        for (std::size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
            return false;
        }
        i += len;
    }
    return true;
}

// A string value's text (without the terminator), or nullopt when it is not valid text.
std::optional<std::string_view> text_of(const std::uint8_t* v) noexcept {
    // The caller has checked the value with value_size, so the length is in range.
    const std::string_view s(reinterpret_cast<const char*>(v + 4), bson_le32(v) - 1);
    if (!valid_text(s))
        return std::nullopt;
    return s;
}

// Where a JSON column sits in the extractor's buffer while the row is being built.
struct json_slot {
    std::size_t offset = 0;
    std::size_t size = 0;
    bool present = false;
};

enum slot : unsigned {
    slot_document_key,
    slot_full_document,
    slot_update_description,
    slot_before_change,
    slot_lsid,
    slot_resume_token,
    slot_count,
};

void describe_event(const change_event& ev, std::string& out) {
    out += "change event";
    if (!ev.operation.empty()) {
        out += " (";
        out.append(ev.operation);
        out += ')';
    }
    out += " in ";
    if (ev.db.empty()) {
        out += "an unknown namespace";
    } else {
        out.append(ev.db);
        if (!ev.coll.empty()) {
            out += '.';
            out.append(ev.coll);
        }
    }
}

error_code fail(const change_event& ev, diagnostics& diag, std::string_view what) {
    diag.message.clear();
    describe_event(ev, diag.message);
    diag.message += " cannot be written as a table row: ";
    diag.message.append(what);
    return penne::errc::unencodable_event;
}

const char* type_name(std::uint8_t type) noexcept {
    switch (type) {
        case 0x01:
            return "double";
        case 0x02:
            return "string";
        case 0x03:
            return "document";
        case 0x04:
            return "array";
        case 0x05:
            return "binary";
        case 0x06:
            return "undefined";
        case 0x07:
            return "ObjectId";
        case 0x08:
            return "bool";
        case 0x09:
            return "date";
        case 0x0A:
            return "null";
        case 0x0B:
            return "regex";
        case 0x0C:
            return "DBPointer";
        case 0x0D:
            return "code";
        case 0x0E:
            return "symbol";
        case 0x0F:
            return "code with scope";
        case 0x10:
            return "int32";
        case 0x11:
            return "timestamp";
        case 0x12:
            return "int64";
        case 0x13:
            return "decimal128";
        case 0x7F:
            return "maxKey";
        case 0xFF:
            return "minKey";
    }
    return "unknown";
}

error_code wrong_type(const change_event& ev, diagnostics& diag, std::string_view field,
                      std::uint8_t type, std::string_view expected) {
    std::string what = "field '";
    what.append(field);
    what += "' is a BSON ";
    what += type_name(type);
    what += ", expected ";
    what.append(expected);
    return fail(ev, diag, what);
}

// Splits the document at [p, p + len) into elements; calls f(type, key, value, size) for
// each. Returns false when the framing is broken (the caller reports it).
template <typename F>
bool for_each_element(const std::uint8_t* p, std::size_t len, F&& f) {
    if (len < 5 || bson_le32(p) != len || p[len - 1] != 0)
        return false;
    const std::size_t end = len - 1;
    std::size_t pos = 4;
    while (pos < end) {
        const std::uint8_t type = p[pos++];
        const std::size_t klen = bson_cstring_size(p + pos, end - pos);
        if (klen == npos)
            return false;
        const std::string_view key(reinterpret_cast<const char*>(p + pos), klen - 1);
        pos += klen;
        const std::size_t vsize = bson_value_size(type, p + pos, end - pos);
        if (vsize == npos)
            return false;
        if (!f(type, key, p + pos, vsize))
            return false;
        pos += vsize;
    }
    return pos == end;
}

}  // namespace

error_code tabular_extractor::extract(const change_event& ev, tabular_row& row, diagnostics& diag) {
    row = tabular_row{};
    json_.clear();
    json_slot slots[slot_count];
    bool have_operation = false, have_cluster_time = false;
    unsigned seen = 0;  // bit per field read, to reject duplicates
    error_code ec;

    // Renders the document at v as the JSON column `s`.
    auto render = [&](slot s, const std::uint8_t* v, std::size_t size, std::string_view field) {
        slots[s].offset = json_.size();
        if (!write_ejson(v, size, mode_, json_)) {
            std::string what = "field '";
            what.append(field);
            what += "' is not a valid BSON document";
            ec = fail(ev, diag, what);
            return false;
        }
        slots[s].size = json_.size() - slots[s].offset;
        slots[s].present = true;
        return true;
    };
    // Document columns that MongoDB may send as null (fullDocument after a lookup that
    // found nothing, fullDocumentBeforeChange without a pre-image).
    auto document_or_null = [&](slot s, std::uint8_t type, std::string_view field,
                                const std::uint8_t* v, std::size_t size) {
        if (type == 0x0A)
            return true;
        if (type != 0x03) {
            ec = wrong_type(ev, diag, field, type, "document or null");
            return false;
        }
        return render(s, v, size, field);
    };

    auto on_field = [&](std::uint8_t type, std::string_view key, const std::uint8_t* v,
                        std::size_t size) {
        static constexpr std::string_view fields[] = {
            "_id",
            "operationType",
            "ns",
            "clusterTime",
            "wallTime",
            "documentKey",
            "fullDocument",
            "updateDescription",
            "fullDocumentBeforeChange",
            "txnNumber",
            "lsid",
        };
        unsigned index = 0;
        while (index < std::size(fields) && fields[index] != key)
            ++index;
        if (index == std::size(fields))
            return true;  // a field outside the schema (to, operationDescription, …)
        if (seen & (1u << index)) {
            std::string what = "field '";
            what.append(key);
            what += "' appears twice";
            ec = fail(ev, diag, what);
            return false;
        }
        seen |= 1u << index;
        switch (index) {
            case 0:
                if (type != 0x03) {
                    ec = wrong_type(ev, diag, key, type, "document");
                    return false;
                }
                return render(slot_resume_token, v, size, key);
            case 1: {
                if (type != 0x02) {
                    ec = wrong_type(ev, diag, key, type, "string");
                    return false;
                }
                auto op = text_of(v);
                if (!op || op->empty()) {
                    ec = fail(ev, diag, "operationType is empty or not valid UTF-8");
                    return false;
                }
                row.operation = *op;
                have_operation = true;
                return true;
            }
            case 2: {
                if (type != 0x03) {
                    ec = wrong_type(ev, diag, key, type, "document");
                    return false;
                }
                bool ok = true;
                const bool framed = for_each_element(
                    v, size,
                    [&](std::uint8_t t, std::string_view k, const std::uint8_t* nv, std::size_t) {
                        std::optional<std::string_view>* target = nullptr;
                        if (k == "db") {
                            target = &row.database;
                        } else if (k == "coll") {
                            target = &row.collection;
                        } else {
                            return true;
                        }
                        if (t != 0x02) {
                            std::string field = "ns.";
                            field.append(k);
                            ec = wrong_type(ev, diag, field, t, "string");
                            ok = false;
                            return false;
                        }
                        auto s = text_of(nv);
                        if (!s) {
                            std::string what = "ns.";
                            what.append(k);
                            what += " is not valid UTF-8";
                            ec = fail(ev, diag, what);
                            ok = false;
                            return false;
                        }
                        *target = *s;
                        return true;
                    });
                if (!ok)
                    return false;
                if (!framed) {
                    ec = fail(ev, diag, "field 'ns' is not a valid BSON document");
                    return false;
                }
                return true;
            }
            case 3: {
                if (type != 0x11) {
                    ec = wrong_type(ev, diag, key, type, "timestamp");
                    return false;
                }
                const std::uint64_t ts = bson_le64(v);
                row.cluster_time_seconds = static_cast<std::uint32_t>(ts >> 32);
                row.cluster_time_increment = static_cast<std::uint32_t>(ts);
                have_cluster_time = true;
                return true;
            }
            case 4:
                if (type == 0x0A)
                    return true;
                if (type != 0x09) {
                    ec = wrong_type(ev, diag, key, type, "date or null");
                    return false;
                }
                row.wall_time_ms = static_cast<std::int64_t>(bson_le64(v));
                return true;
            case 5:
                return document_or_null(slot_document_key, type, key, v, size);
            case 6:
                return document_or_null(slot_full_document, type, key, v, size);
            case 7:
                return document_or_null(slot_update_description, type, key, v, size);
            case 8:
                return document_or_null(slot_before_change, type, key, v, size);
            case 9:
                if (type == 0x12) {
                    row.txn_number = static_cast<std::int64_t>(bson_le64(v));
                } else if (type == 0x10) {
                    row.txn_number = static_cast<std::int32_t>(bson_le32(v));
                } else if (type != 0x0A) {
                    ec = wrong_type(ev, diag, key, type, "int64 or null");
                    return false;
                }
                return true;
            default:
                return document_or_null(slot_lsid, type, key, v, size);
        }
    };

    if (!for_each_element(ev.raw.data(), ev.raw.size(), on_field)) {
        if (ec)
            return ec;
        return fail(ev, diag,
                    "not a valid BSON document (" + std::to_string(ev.raw.size()) + " bytes)");
    }
    if (!slots[slot_resume_token].present)
        return fail(ev, diag, "no '_id' (resume token)");
    if (!have_operation)
        return fail(ev, diag, "no 'operationType'");
    if (!have_cluster_time)
        return fail(ev, diag, "no 'clusterTime'");

    // The buffer is complete: views into it stay valid until the next extract().
    auto view = [this, &slots](slot s) -> std::optional<std::string_view> {
        if (!slots[s].present)
            return std::nullopt;
        return std::string_view(json_).substr(slots[s].offset, slots[s].size);
    };
    row.document_key = view(slot_document_key);
    row.full_document = view(slot_full_document);
    row.update_description = view(slot_update_description);
    row.full_document_before_change = view(slot_before_change);
    row.lsid = view(slot_lsid);
    row.resume_token = *view(slot_resume_token);
    return {};
}

void append_iso8601_ms(std::int64_t ms, std::string& out) {
    constexpr std::int64_t ms_per_day = 86'400'000;
    std::int64_t days = ms / ms_per_day;
    std::int64_t rem = ms % ms_per_day;
    if (rem < 0) {
        rem += ms_per_day;
        --days;
    }
    // Proleptic Gregorian date from days since 1970-01-01, in 400-year eras that start on
    // 0000-03-01 so the leap day is the last day of an era year.
    const std::int64_t z = days + 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const std::int64_t doe = z - era * 146097;                                       // [0, 146096]
    const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;  // [0, 399]
    const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);                // [0, 365]
    const std::int64_t mp = (5 * doy + 2) / 153;                                     // [0, 11]
    const unsigned day = static_cast<unsigned>(doy - (153 * mp + 2) / 5 + 1);
    const unsigned month = static_cast<unsigned>(mp < 10 ? mp + 3 : mp - 9);
    const std::int64_t year = yoe + era * 400 + (month <= 2 ? 1 : 0);

    char buf[48];
    char* d = buf;
    auto digits = [&d](std::uint64_t v, int width) {
        char tmp[24];
        int n = 0;
        do {
            tmp[n++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v != 0);
        while (n < width)
            tmp[n++] = '0';
        while (n > 0)
            *d++ = tmp[--n];
    };
    if (year >= 0 && year <= 9999) {
        digits(static_cast<std::uint64_t>(year), 4);
    } else {
        *d++ = year < 0 ? '-' : '+';
        digits(year < 0 ? 0 - static_cast<std::uint64_t>(year) : static_cast<std::uint64_t>(year),
               5);
    }
    *d++ = '-';
    digits(month, 2);
    *d++ = '-';
    digits(day, 2);
    *d++ = 'T';
    digits(static_cast<std::uint64_t>(rem / 3'600'000), 2);
    *d++ = ':';
    digits(static_cast<std::uint64_t>(rem / 60'000 % 60), 2);
    *d++ = ':';
    digits(static_cast<std::uint64_t>(rem / 1000 % 60), 2);
    *d++ = '.';
    digits(static_cast<std::uint64_t>(rem % 1000), 3);
    *d++ = 'Z';
    out.append(buf, static_cast<std::size_t>(d - buf));
}

}  // namespace penne::formats
