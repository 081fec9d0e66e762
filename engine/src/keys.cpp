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

void append_escaped(std::string& out, std::string_view name) {
    constexpr char hex[] = "0123456789ABCDEF";
    for (unsigned char c : name) {
        bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
        if (safe) {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xf]);
        }
    }
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
        static constexpr std::array<std::pair<std::string_view, part::kind_t>, 10> names{{
            {"prefix", part::prefix},
            {"db", part::db},
            {"coll", part::coll},
            {"yyyy", part::yyyy},
            {"mm", part::mm},
            {"dd", part::dd},
            {"hh", part::hh},
            {"first_ts", part::first_ts},
            {"first_token_hash", part::token_hash},
            {"format_ext", part::ext},
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
                           "}; allowed: {prefix} {db} {coll} {yyyy} {mm} {dd} {hh} {first_ts} "
                           "{first_token_hash} {format_ext}";
            return errc::invalid_config;
        }
        i = close + 1;
    }
    if (!unique) {
        diag.message = "key template '" + std::string(spec) +
                       "' must contain {first_token_hash} so that every batch gets its own "
                       "deterministic key";
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
                append_escaped(out, in.coll.empty() ? "_" : in.coll);
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
