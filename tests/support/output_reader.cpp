#include "output_reader.hpp"

#include <penne/formats/compress.hpp>

#include <bson/bson.h>

#include <filesystem>
#include <fstream>
#include <sstream>

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
    if (bson_iter_init(&it, doc) && bson_iter_find_descendant(&it, "fullDocument.n", &it)) {
        if (BSON_ITER_HOLDS_INT32(&it))
            ev.n = bson_iter_int32(&it);
        if (BSON_ITER_HOLDS_INT64(&it))
            ev.n = bson_iter_int64(&it);
    }
    bson_destroy(doc);
    out.events.push_back(std::move(ev));
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
        if (name.find(".jsonl") == std::string::npos || name.front() == '.')
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
