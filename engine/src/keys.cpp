#include <penne/keys.hpp>

#include <array>
#include <cstdio>
#include <ctime>

namespace penne {
namespace {

std::string_view preset_template(std::string_view name) {
    if (name == "date_hour")
        return "{prefix}/{db}/{coll}/{yyyy}/{mm}/{dd}/{hh}/"
               "{first_ts}-{first_token_hash}.{format_ext}";
    if (name == "hive")
        return "{prefix}/database={db}/collection={coll}/year={yyyy}/month={mm}/day={dd}/"
               "hour={hh}/{first_ts}-{first_token_hash}.{format_ext}";
    if (name == "date")
        return "{prefix}/{db}/{coll}/{yyyy}/{mm}/{dd}/{first_ts}-{first_token_hash}.{format_ext}";
    if (name == "collection")
        return "{prefix}/{db}/{coll}/{first_ts}-{first_token_hash}.{format_ext}";
    if (name == "flat")
        return "{prefix}/{db}_{coll}_{first_ts}-{first_token_hash}.{format_ext}";
    return {};
}

// Percent-encodes every byte outside [A-Za-z0-9._-], and a leading '.', so that no name
// can make a "." or ".." path segment (which S3 tools and local destinations resolve).
// An empty name becomes "_", so a key keeps its number of segments.
void append_escaped(std::string& out, std::string_view name) {
    constexpr char hex[] = "0123456789ABCDEF";
    if (name.empty()) {
        out.push_back('_');
        return;
    }
    bool first = true;
    for (unsigned char c : name) {
        bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    (c == '.' && !first) || c == '_' || c == '-';
        first = false;
        if (safe) {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xf]);
        }
    }
}

// The first '/'-separated segment of `path` that is "." or "..", or an empty view.
std::string_view dot_segment(std::string_view path) {
    std::size_t start = 0;
    while (start <= path.size()) {
        std::size_t end = path.find('/', start);
        if (end == std::string_view::npos)
            end = path.size();
        const auto segment = path.substr(start, end - start);
        if (segment == "." || segment == "..")
            return segment;
        start = end + 1;
    }
    return {};
}

void append_number(std::string& out, unsigned value, int width) {
    char buf[16];
    int n = std::snprintf(buf, sizeof buf, "%0*u", width, value);
    out.append(buf, static_cast<std::size_t>(n));
}

}  // namespace

error_code key_template::parse(std::string_view spec, std::string prefix, key_template& out,
                               diagnostics& diag) {
    std::string_view tpl = spec;
    if (spec.find('{') == std::string_view::npos) {
        tpl = preset_template(spec);
        if (tpl.empty()) {
            diag.message = "unknown key preset '" + std::string(spec) +
                           "'; use one of date_hour, hive, date, collection, flat, or a "
                           "template with {placeholders}";
            return errc::invalid_config;
        }
    }
    key_template t;
    t.spec_ = std::string(spec);
    while (!prefix.empty() && prefix.back() == '/')
        prefix.pop_back();
    t.prefix_ = std::move(prefix);
    bool unique = false;
    std::size_t i = 0;
    while (i < tpl.size()) {
        auto open = tpl.find('{', i);
        if (open == std::string_view::npos) {
            t.parts_.push_back({part::literal, std::string(tpl.substr(i))});
            break;
        }
        if (open > i)
            t.parts_.push_back({part::literal, std::string(tpl.substr(i, open - i))});
        auto close = tpl.find('}', open);
        if (close == std::string_view::npos) {
            diag.message = "key template '" + std::string(spec) + "' has an unclosed '{'";
            return errc::invalid_config;
        }
        auto name = tpl.substr(open + 1, close - open - 1);
        // The short names of DESIGN §10 and the long ones of issue 7 are both accepted.
        static constexpr std::array<std::pair<std::string_view, part::kind_t>, 14> names{{
            {"prefix", part::prefix},
            {"db", part::db},
            {"database", part::db},
            {"coll", part::coll},
            {"collection", part::coll},
            {"yyyy", part::yyyy},
            {"mm", part::mm},
            {"dd", part::dd},
            {"hh", part::hh},
            {"first_ts", part::first_ts},
            {"first_cluster_time", part::first_ts},
            {"first_token_hash", part::token_hash},
            {"format_ext", part::ext},
            {"ext", part::ext},
        }};
        bool found = false;
        for (auto& [n, k] : names) {
            if (n == name) {
                t.parts_.push_back({k, {}});
                found = true;
                if (k == part::token_hash)
                    unique = true;
            }
        }
        if (!found) {
            diag.message = "key template '" + std::string(spec) + "' has unknown placeholder {" +
                           std::string(name) +
                           "}; allowed: {prefix}, {db} or {database}, {coll} or {collection}, "
                           "{yyyy} {mm} {dd} {hh}, {first_ts} or {first_cluster_time}, "
                           "{first_token_hash}, {format_ext} or {ext}";
            return errc::invalid_config;
        }
        i = close + 1;
    }
    if (!unique) {
        diag.message = "key template '" + std::string(spec) +
                       "' must contain {first_token_hash} so that every batch gets its own "
                       "deterministic key (a clusterTime is shared by the events of one "
                       "transaction, so {first_ts} alone can repeat)";
        return errc::invalid_config;
    }
    // A literal "." or ".." segment would be resolved away by S3 tools and local
    // destinations, so two configurations could name the same object.
    if (auto seg = dot_segment(tpl); !seg.empty()) {
        diag.message =
            "key template '" + std::string(spec) + "' has a '" + std::string(seg) + "' segment";
        return errc::invalid_config;
    }
    if (auto seg = dot_segment(t.prefix_); !seg.empty()) {
        diag.message = "key prefix '" + t.prefix_ + "' has a '" + std::string(seg) + "' segment";
        return errc::invalid_config;
    }
    out = std::move(t);
    return {};
}

void key_template::render(const key_inputs& in, std::string& out) const {
    out.clear();
    std::time_t secs = static_cast<std::time_t>(in.first_time.seconds);
    std::tm utc{};
    gmtime_r(&secs, &utc);
    for (const auto& p : parts_) {
        switch (p.kind) {
            case part::literal:
                out += p.text;
                break;
            case part::prefix:
                out += prefix_;
                break;
            case part::db:
                append_escaped(out, in.db);
                break;
            case part::coll:
                append_escaped(out, in.coll);
                break;
            case part::yyyy:
                append_number(out, static_cast<unsigned>(utc.tm_year + 1900), 4);
                break;
            case part::mm:
                append_number(out, static_cast<unsigned>(utc.tm_mon + 1), 2);
                break;
            case part::dd:
                append_number(out, static_cast<unsigned>(utc.tm_mday), 2);
                break;
            case part::hh:
                append_number(out, static_cast<unsigned>(utc.tm_hour), 2);
                break;
            case part::first_ts:
                append_number(out, in.first_time.seconds, 10);
                out.push_back('.');
                append_number(out, in.first_time.increment, 10);
                break;
            case part::token_hash:
                out += in.first_token_hash;
                break;
            case part::ext:
                out += in.format_ext;
                break;
        }
    }
    // An empty prefix leaves a leading '/', and empty segments make awkward S3 keys.
    std::size_t w = 0;
    for (std::size_t r = 0; r < out.size(); ++r) {
        if (out[r] == '/' && (w == 0 || out[w - 1] == '/'))
            continue;
        out[w++] = out[r];
    }
    out.resize(w);
}

}  // namespace penne
