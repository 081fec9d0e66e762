#include "output_reader.hpp"

#include <penne/formats/compress.hpp>

#include <bson/bson.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace penne::test {
namespace {

std::string utf8(const bson_iter_t& it) {
    uint32_t len = 0;
    const char* s = bson_iter_utf8(&it, &len);
    return std::string(s, len);
}

void parse_line(std::string_view line, const std::string& object, output_scan& out) {
    bson_error_t err;
    bson_t* doc = bson_new_from_json(reinterpret_cast<const uint8_t*>(line.data()),
                                     static_cast<ssize_t>(line.size()), &err);
    if (!doc) {
        out.errors.push_back(object + ": unparsable line: " + err.message);
        return;
    }
    written_event ev;
    ev.object = object;
    bson_iter_t it;
    if (bson_iter_init_find(&it, doc, "operationType") && BSON_ITER_HOLDS_UTF8(&it))
        ev.operation = utf8(it);
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "ns.db", &it) &&
        BSON_ITER_HOLDS_UTF8(&it))
        ev.db = utf8(it);
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "ns.coll", &it) &&
        BSON_ITER_HOLDS_UTF8(&it))
        ev.coll = utf8(it);
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "_id._data", &it) &&
        BSON_ITER_HOLDS_UTF8(&it))
        ev.token = utf8(it);
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "documentKey._id", &it)) {
        if (BSON_ITER_HOLDS_OID(&it)) {
            char hex[25];
            bson_oid_to_string(bson_iter_oid(&it), hex);
            ev.key = hex;
        } else if (BSON_ITER_HOLDS_INT32(&it)) {
            ev.key = std::to_string(bson_iter_int32(&it));
        } else if (BSON_ITER_HOLDS_INT64(&it)) {
            ev.key = std::to_string(bson_iter_int64(&it));
        } else if (BSON_ITER_HOLDS_UTF8(&it)) {
            ev.key = utf8(it);
        }
    }
    if (bson_iter_init(&it, doc) &&
        bson_iter_find_descendant(&it, "updateDescription.updatedFields.v", &it)) {
        if (BSON_ITER_HOLDS_INT32(&it))
            ev.version = bson_iter_int32(&it);
        if (BSON_ITER_HOLDS_INT64(&it))
            ev.version = bson_iter_int64(&it);
    }
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "fullDocument.n", &it)) {
        if (BSON_ITER_HOLDS_INT32(&it))
            ev.n = bson_iter_int32(&it);
        if (BSON_ITER_HOLDS_INT64(&it))
            ev.n = bson_iter_int64(&it);
    }
    bson_destroy(doc);
    out.events.push_back(std::move(ev));
}

// An RFC 4180 reader, independent of the encoder: quoted fields may hold the delimiter,
// doubled quotes, CR and LF. Returns false on a malformed record.
bool csv_records(std::string_view text, std::vector<std::vector<std::string>>& rows) {
    std::vector<std::string> row;
    std::string field;
    bool quoted = false, was_quoted = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (quoted) {
            if (c == '"') {
                if (i + 1 < text.size() && text[i + 1] == '"') {
                    field.push_back('"');
                    ++i;
                } else {
                    quoted = false;
                }
            } else {
                field.push_back(c);
            }
            continue;
        }
        if (c == '"') {
            if (!field.empty() || was_quoted)
                return false;
            quoted = was_quoted = true;
        } else if (c == ',') {
            row.push_back(std::move(field));
            field.clear();
            was_quoted = false;
        } else if (c == '\r' || c == '\n') {
            if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n')
                ++i;
            row.push_back(std::move(field));
            field.clear();
            was_quoted = false;
            rows.push_back(std::move(row));
            row.clear();
        } else {
            field.push_back(c);
        }
    }
    return !quoted && field.empty() && row.empty();  // every record ends with a line break
}

std::string json_string_at(std::string_view json, const char* path) {
    std::string out;
    bson_error_t err;
    bson_t* doc = bson_new_from_json(reinterpret_cast<const uint8_t*>(json.data()),
                                     static_cast<ssize_t>(json.size()), &err);
    if (!doc)
        return out;
    bson_iter_t it;
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &it) &&
        BSON_ITER_HOLDS_UTF8(&it))
        out = utf8(it);
    bson_destroy(doc);
    return out;
}

std::int64_t json_int_at(std::string_view json, const char* path) {
    std::int64_t out = -1;
    bson_error_t err;
    bson_t* doc = bson_new_from_json(reinterpret_cast<const uint8_t*>(json.data()),
                                     static_cast<ssize_t>(json.size()), &err);
    if (!doc)
        return out;
    bson_iter_t it;
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, path, &it)) {
        if (BSON_ITER_HOLDS_INT32(&it))
            out = bson_iter_int32(&it);
        if (BSON_ITER_HOLDS_INT64(&it))
            out = bson_iter_int64(&it);
    }
    bson_destroy(doc);
    return out;
}

void parse_csv(std::string_view text, const std::string& object, output_scan& out) {
    std::vector<std::vector<std::string>> rows;
    if (!csv_records(text, rows) || rows.empty()) {
        out.errors.push_back(object + ": malformed CSV");
        return;
    }
    const auto& header = rows.front();
    auto column = [&](std::string_view name) -> std::size_t {
        for (std::size_t i = 0; i < header.size(); ++i)
            if (header[i] == name)
                return i;
        return header.size();
    };
    const std::size_t op = column("operation"), db = column("database"),
                      coll = column("collection"), token = column("resume_token"),
                      full = column("full_document");
    if (op == header.size() || token == header.size()) {
        out.errors.push_back(object + ": CSV header lacks operation/resume_token");
        return;
    }
    for (std::size_t r = 1; r < rows.size(); ++r) {
        const auto& row = rows[r];
        if (row.size() != header.size()) {
            out.errors.push_back(object + ": CSV row " + std::to_string(r) + " has " +
                                 std::to_string(row.size()) + " fields");
            continue;
        }
        written_event ev;
        ev.object = object;
        ev.operation = row[op];
        if (db < row.size())
            ev.db = row[db];
        if (coll < row.size())
            ev.coll = row[coll];
        ev.token = json_string_at(row[token], "_data");
        if (full < row.size() && !row[full].empty())
            ev.n = json_int_at(row[full], "n");
        out.events.push_back(std::move(ev));
    }
}

}  // namespace

output_scan scan_output(const std::string& root) {
    output_scan out;
    if (!std::filesystem::exists(root))
        return out;
    for (auto& entry : std::filesystem::recursive_directory_iterator(root)) {
        if (!entry.is_regular_file())
            continue;
        const auto path = entry.path().string();
        const auto name = entry.path().filename().string();
        const bool jsonl = name.find(".jsonl") != std::string::npos;
        const bool csv = name.find(".csv") != std::string::npos;
        if ((!jsonl && !csv) || name.front() == '.')
            continue;
        std::ifstream in(path, std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        std::string raw = ss.str(), text;
        formats::codec c = formats::codec::none;
        if (name.ends_with(".zst"))
            c = formats::codec::zstd;
        if (name.ends_with(".gz"))
            c = formats::codec::gzip;
        if (c == formats::codec::none) {
            text = std::move(raw);
        } else {
            diagnostics d;
            if (auto ec = formats::decompress(c, raw, text, d)) {
                out.errors.push_back(path + ": " + d.message);
                continue;
            }
        }
        ++out.objects;
        const std::string rel = std::filesystem::relative(entry.path(), root).string();
        if (csv) {
            parse_csv(text, rel, out);
            continue;
        }
        std::size_t pos = 0;
        while (pos < text.size()) {
            auto nl = text.find('\n', pos);
            if (nl == std::string::npos) {
                out.errors.push_back(rel + ": last line has no newline");
                nl = text.size();
            }
            parse_line(std::string_view(text).substr(pos, nl - pos), rel, out);
            pos = nl + 1;
        }
    }
    return out;
}

}  // namespace penne::test
