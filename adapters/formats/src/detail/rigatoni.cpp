#include "rigatoni.hpp"

#include <penne/formats/tabular.hpp>

#include <iterator>

namespace penne::formats::detail {
namespace {

struct operation_names {
    std::string_view mongo;
    std::string_view debug;  // Rust Debug of the enum variant
    std::string_view serde;  // serde rename_all = "lowercase"
};

constexpr operation_names known_operations[] = {
    {"insert", "Insert", "insert"},
    {"update", "Update", "update"},
    {"delete", "Delete", "delete"},
    {"replace", "Replace", "replace"},
    {"invalidate", "Invalidate", "invalidate"},
    {"drop", "Drop", "drop"},
    {"dropDatabase", "DropDatabase", "dropdatabase"},
    {"rename", "Rename", "rename"},
};

const operation_names* find_operation(std::string_view op) noexcept {
    for (const auto& names : known_operations) {
        if (names.mongo == op)
            return &names;
    }
    return nullptr;
}

// One member of a compact JSON object: the key as written (escapes and all, without the
// quotes) and the whole "key":value text.
struct json_member {
    std::string_view key;
    std::string_view text;
};

// The end of the JSON string whose opening quote is at `i` (the index after its closing
// quote), or json.size() when it is not closed.
std::size_t skip_string(std::string_view json, std::size_t i) noexcept {
    for (++i; i < json.size(); ++i) {
        if (json[i] == '\\') {
            ++i;
        } else if (json[i] == '"') {
            return i + 1;
        }
    }
    return json.size();
}

// The end of the value starting at `i`: the index of the ',' or closing bracket that ends
// it at depth 0, or json.size().
std::size_t skip_value(std::string_view json, std::size_t i) noexcept {
    int depth = 0;
    while (i < json.size()) {
        const char c = json[i];
        if (c == '"') {
            i = skip_string(json, i);
            continue;
        }
        if (c == '{' || c == '[') {
            ++depth;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return i;
            --depth;
        } else if (c == ',' && depth == 0) {
            return i;
        }
        ++i;
    }
    return i;
}

// Calls f(member) for each top-level member of the compact object `json`.
template <typename F>
void for_each_member(std::string_view json, F&& f) {
    if (json.size() < 2 || json.front() != '{')
        return;
    std::size_t i = 1;
    while (i < json.size() && json[i] == '"') {
        const std::size_t key_end = skip_string(json, i);
        if (key_end >= json.size() || json[key_end] != ':')
            return;
        const std::size_t value_end = skip_value(json, key_end + 1);
        f(json_member{json.substr(i + 1, key_end - i - 2), json.substr(i, value_end - i)});
        if (value_end >= json.size() || json[value_end] != ',')
            return;
        i = value_end + 1;
    }
}

}  // namespace

std::string_view rigatoni_debug_operation(std::string_view op) noexcept {
    const auto* names = find_operation(op);
    return names ? names->debug : op;
}

std::string_view rigatoni_serde_operation(std::string_view op) noexcept {
    const auto* names = find_operation(op);
    return names ? names->serde : op;
}

std::int64_t rigatoni_cluster_time_ms(std::uint32_t seconds, std::uint32_t increment) noexcept {
    return std::int64_t{seconds} * 1000 + (increment < 1000 ? std::int64_t{increment} : 0);
}

void append_rigatoni_time(std::uint32_t seconds, std::uint32_t increment,
                          rigatoni_utc_suffix suffix, std::string& out) {
    // Written in place as "YYYY-MM-DDTHH:MM:SS.mmmZ" (a uint32 second is always within
    // 1970-2106, so exactly 24 characters), then cut after the seconds or the milliseconds.
    const std::size_t start = out.size();
    append_iso8601_ms(rigatoni_cluster_time_ms(seconds, increment), out);
    const bool fraction = increment != 0 && increment < 1000;
    out.resize(start + (fraction ? 23 : 19));
    out += suffix == rigatoni_utc_suffix::z ? "Z" : "+00:00";
}

void append_compact_json(std::string_view json, std::string& out) {
    bool in_string = false;
    bool escaped = false;
    const std::size_t start = out.size();
    out.resize(start + json.size());
    char* d = out.data() + start;
    for (const char c : json) {
        if (in_string) {
            *d++ = c;
            if (escaped) {
                escaped = false;
            } else if (c == '\\') {
                escaped = true;
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c != ' ') {
            *d++ = c;
            in_string = c == '"';
        }
    }
    out.resize(static_cast<std::size_t>(d - out.data()));
}

void append_json_string(std::string_view s, std::string& out) {
    constexpr char hex[] = "0123456789abcdef";
    out += '"';
    std::size_t run = 0;  // start of the bytes not yet copied
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        out.append(s, run, i - run);
        run = i + 1;
        out += '\\';
        switch (c) {
            case '"':
                out += '"';
                break;
            case '\\':
                out += '\\';
                break;
            case '\b':
                out += 'b';
                break;
            case '\t':
                out += 't';
                break;
            case '\n':
                out += 'n';
                break;
            case '\f':
                out += 'f';
                break;
            case '\r':
                out += 'r';
                break;
            default:
                out += "u00";
                out += hex[c >> 4];
                out += hex[c & 0xF];
                break;
        }
    }
    out.append(s, run, s.size() - run);
    out += '"';
}

void append_rigatoni_update_description(std::string_view description, std::string& out) {
    static constexpr std::string_view order[] = {"updatedFields", "removedFields",
                                                 "truncatedArrays"};
    std::string_view found[std::size(order)];
    for_each_member(description, [&](const json_member& m) {
        for (std::size_t k = 0; k < std::size(order); ++k) {
            if (m.key == order[k] && found[k].empty())
                found[k] = m.text;
        }
    });
    out += '{';
    bool first = true;
    for (const auto& text : found) {
        if (text.empty())
            continue;
        if (!first)
            out += ',';
        out.append(text);
        first = false;
    }
    out += '}';
}

}  // namespace penne::formats::detail
