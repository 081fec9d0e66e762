#include <penne/config.hpp>

#include <toml++/toml.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>
#include <sstream>

namespace penne {
namespace {

// Reads one TOML table, remembering which keys were used so that unknown keys (typos)
// are reported instead of silently ignored.
class table_reader {
public:
    table_reader(const toml::table* t, std::string path, std::string source, std::string& error)
        : t_(t), path_(std::move(path)), source_(std::move(source)), error_(error) {}

    bool ok() const { return error_.empty(); }
    bool present() const { return t_ != nullptr; }

    std::string key_name(std::string_view key) const {
        return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
    }

    void fail(std::string_view key, const std::string& what) {
        if (error_.empty())
            error_ = source_ + ": " + key_name(key) + ": " + what;
    }

    const toml::node* node(std::string_view key) {
        used_.insert(std::string(key));
        return t_ ? t_->get(key) : nullptr;
    }

    void string(std::string_view key, std::string& out,
                std::initializer_list<std::string_view> allowed = {}) {
        auto* n = node(key);
        if (!n)
            return;
        auto v = n->value<std::string>();
        if (!v)
            return fail(key, "expected a string");
        if (allowed.size() &&
            std::find(allowed.begin(), allowed.end(), std::string_view(*v)) == allowed.end()) {
            std::string list;
            for (auto a : allowed)
                list += (list.empty() ? "" : ", ") + std::string(a);
            return fail(key, "'" + *v + "' is not allowed; use one of: " + list);
        }
        out = *v;
    }

    template <class Int>
    void integer(std::string_view key, Int& out, std::int64_t min, std::int64_t max) {
        auto* n = node(key);
        if (!n)
            return;
        auto v = n->value<std::int64_t>();
        if (!v || !n->is_integer())
            return fail(key, "expected an integer");
        if (*v < min || *v > max) {
            return fail(key, std::to_string(*v) + " is out of range; allowed " +
                                 std::to_string(min) + ".." + std::to_string(max));
        }
        out = static_cast<Int>(*v);
    }

    void millis(std::string_view key, std::chrono::milliseconds& out, std::int64_t min,
                std::int64_t max) {
        std::int64_t v = out.count();
        integer(key, v, min, max);
        out = std::chrono::milliseconds(v);
    }

    void size(std::string_view key, std::uint64_t& out, std::uint64_t min) {
        auto* n = node(key);
        if (!n)
            return;
        std::optional<std::uint64_t> v;
        if (n->is_integer()) {
            auto i = *n->value<std::int64_t>();
            if (i >= 0)
                v = static_cast<std::uint64_t>(i);
        } else if (auto s = n->value<std::string>()) {
            v = parse_size(*s);
        }
        if (!v)
            return fail(key, "expected a size such as 1048576, \"64MiB\" or \"512KiB\"");
        if (*v < min)
            return fail(key, "must be at least " + std::to_string(min) + " bytes");
        out = *v;
    }

    void boolean(std::string_view key, bool& out) {
        auto* n = node(key);
        if (!n)
            return;
        auto v = n->value<bool>();
        if (!v || !n->is_boolean())
            return fail(key, "expected true or false");
        out = *v;
    }

    // A start position (parse_start_at): a string, or as TOML writes them, an integer number
    // of seconds or an offset date-time (start_at = 2026-12-06T10:00:00Z). Sets `text` to
    // the value's string form; returns whether the key is present and valid.
    bool start_at(std::string_view key, std::string& text, std::optional<cluster_time>& out) {
        auto* n = node(key);
        if (!n)
            return false;
        if (auto v = n->value<std::string>(); v && n->is_string()) {
            text = *v;
        } else if (n->is_integer()) {
            text = std::to_string(*n->value<std::int64_t>());
        } else if (n->is_date_time() || n->is_date() || n->is_time()) {
            std::ostringstream os;
            if (auto* dt = n->as_date_time())
                os << dt->get();
            else if (auto* d = n->as_date())
                os << d->get();
            else
                os << n->as_time()->get();
            text = os.str();
        } else {
            fail(key,
                 "expected \"now\" or an operation time as a string, e.g. "
                 "\"2026-12-06T10:00:00Z\" or \"1796551200:1\"");
            return false;
        }
        std::string why;
        if (!parse_start_at(text, out, why)) {
            fail(key, why);
            return false;
        }
        return true;
    }

    // An inline table of strings: tags = { team = "data", env = "prod" }.
    void string_map(std::string_view key, std::vector<std::pair<std::string, std::string>>& out) {
        auto* n = node(key);
        if (!n)
            return;
        auto* t = n->as_table();
        if (!t)
            return fail(key, "expected a table of strings, e.g. { team = \"data\" }");
        out.clear();
        for (auto& [k, v] : *t) {
            auto s = v.value<std::string>();
            if (!s || !v.is_string())
                return fail(key, "value of '" + std::string(k.str()) + "' must be a string");
            out.emplace_back(std::string(k.str()), *s);
        }
    }

    void strings(std::string_view key, std::vector<std::string>& out) {
        auto* n = node(key);
        if (!n)
            return;
        auto* arr = n->as_array();
        if (!arr)
            return fail(key, "expected an array of strings");
        out.clear();
        for (auto& el : *arr) {
            auto s = el.value<std::string>();
            if (!s)
                return fail(key, "expected an array of strings");
            out.push_back(*s);
        }
    }

    table_reader sub(std::string_view key) {
        auto* n = node(key);
        const toml::table* t = nullptr;
        if (n) {
            t = n->as_table();
            if (!t)
                fail(key, "expected a table ([" + key_name(key) + "])");
        }
        return table_reader(t, key_name(key), source_, error_);
    }

    // Reports the first key that no reader asked for.
    void reject_unknown() {
        if (!t_ || !ok())
            return;
        for (auto& [k, v] : *t_) {
            if (!used_.count(std::string(k.str()))) {
                fail(k.str(), "unknown key (check the spelling; the README lists every option)");
                return;
            }
        }
    }

private:
    const toml::table* t_;
    std::string path_;
    std::string source_;
    std::string& error_;
    std::set<std::string> used_;
};

// Reads `digits` decimal digits at `pos` (advancing it); false when they are not all there.
bool fixed_digits(std::string_view s, std::size_t& pos, std::size_t digits, int& out) {
    if (pos + digits > s.size())
        return false;
    out = 0;
    for (std::size_t i = 0; i < digits; ++i, ++pos) {
        if (!std::isdigit(static_cast<unsigned char>(s[pos])))
            return false;
        out = out * 10 + (s[pos] - '0');
    }
    return true;
}

// An unsigned decimal of at most 10 digits that fits 32 bits (no sign, no blanks).
std::optional<std::uint32_t> parse_u32(std::string_view s) {
    if (s.empty() || s.size() > 10)
        return std::nullopt;
    std::uint64_t v = 0;
    for (char ch : s) {
        if (!std::isdigit(static_cast<unsigned char>(ch)))
            return std::nullopt;
        v = v * 10 + static_cast<unsigned>(ch - '0');
    }
    if (v > UINT32_MAX)
        return std::nullopt;
    return static_cast<std::uint32_t>(v);
}

// Seconds since the epoch of an RFC 3339 date-time ("2026-12-06T10:00:00Z",
// "2026-12-06t10:00:00.250+02:00"); nullopt when malformed or not a real date.
std::optional<std::int64_t> parse_rfc3339(std::string_view s) {
    std::size_t pos = 0;
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
    auto expect = [&](char ch) {
        if (pos < s.size() && std::tolower(static_cast<unsigned char>(s[pos])) == ch) {
            ++pos;
            return true;
        }
        return false;
    };
    if (!fixed_digits(s, pos, 4, year) || !expect('-') || !fixed_digits(s, pos, 2, month) ||
        !expect('-') || !fixed_digits(s, pos, 2, day) || !expect('t') ||
        !fixed_digits(s, pos, 2, hour) || !expect(':') || !fixed_digits(s, pos, 2, minute) ||
        !expect(':') || !fixed_digits(s, pos, 2, second))
        return std::nullopt;
    if (expect('.')) {
        const auto start = pos;
        while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos])))
            ++pos;
        if (pos == start)
            return std::nullopt;
    }
    int offset_minutes = 0;
    if (!expect('z')) {
        if (pos >= s.size() || (s[pos] != '+' && s[pos] != '-'))
            return std::nullopt;  // no offset: a local time, which names no instant
        const int sign = s[pos++] == '-' ? -1 : 1;
        int oh = 0, om = 0;
        if (!fixed_digits(s, pos, 2, oh) || !expect(':') || !fixed_digits(s, pos, 2, om) ||
            oh > 23 || om > 59)
            return std::nullopt;
        offset_minutes = sign * (oh * 60 + om);
    }
    if (pos != s.size() || hour > 23 || minute > 59 || second > 60)
        return std::nullopt;
    const std::chrono::year_month_day ymd{std::chrono::year(year),
                                          std::chrono::month(static_cast<unsigned>(month)),
                                          std::chrono::day(static_cast<unsigned>(day))};
    if (!ymd.ok())
        return std::nullopt;
    // A leap second (:60) counts as the last second of its minute.
    const std::int64_t days = std::chrono::sys_days(ymd).time_since_epoch().count();
    return days * 86'400 + hour * 3'600 + minute * 60 + std::min(second, 59) - offset_minutes * 60;
}

bool valid_name(std::string_view s) {
    return !s.empty() && s.find('\0') == std::string_view::npos;
}

// A numeric IPv4 or IPv6 address (what the operations server binds to; no host names).
bool valid_ip_address(const std::string& s) {
    unsigned char buf[sizeof(in6_addr)];
    return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

void read_s3(table_reader& top, const std::string& destination_type, s3_settings& out,
             const std::string& error) {
    {
        auto s = top.sub("s3");
        s.string("bucket", out.bucket);
        s.string("region", out.region);
        s.string("endpoint", out.endpoint);
        s.string("addressing", out.addressing, {"auto", "path", "virtual"});
        s.string("profile", out.profile);
        s.string("access_key_id", out.access_key_id);
        s.string("secret_access_key", out.secret_access_key);
        s.string("session_token", out.session_token);
        s.string("storage_class", out.storage_class);
        s.string("sse", out.sse, {"none", "AES256", "aws:kms"});
        s.string("kms_key_id", out.kms_key_id);
        s.string_map("tags", out.tags);
        s.string_map("metadata", out.metadata);
        s.boolean("content_md5", out.content_md5);
        s.boolean("unsigned_payload", out.unsigned_payload);
        s.size("multipart_threshold", out.multipart_threshold, 5ull << 20);
        s.size("part_size", out.part_size, 5ull << 20);
        s.integer("part_concurrency", out.part_concurrency, 1, 64);
        s.string("ca_file", out.ca_file);
        s.boolean("verify_tls", out.verify_tls);
        s.millis("connect_timeout_ms", out.connect_timeout, 100, 600'000);
        s.millis("request_timeout_ms", out.request_timeout, 100, 3'600'000);
        s.integer("max_retries", out.max_retries, 1, 100);
        s.reject_unknown();
        if (error.empty() && destination_type == "s3" && out.bucket.empty())
            s.fail("bucket", "required for [destination] type = \"s3\"");
        if (error.empty() && out.part_size > (5ull << 30))
            s.fail("part_size", "must be at most 5GiB (S3's limit for a part)");
        if (error.empty() && out.multipart_threshold < out.part_size)
            s.fail("multipart_threshold", "must be at least part_size");
        if (error.empty() && out.access_key_id.empty() != out.secret_access_key.empty())
            s.fail(out.access_key_id.empty() ? "access_key_id" : "secret_access_key",
                   "access_key_id and secret_access_key go together");
        if (error.empty() && !out.kms_key_id.empty() && out.sse != "aws:kms")
            s.fail("kms_key_id", "only with sse = \"aws:kms\"");
    }
}

}  // namespace

bool parse_start_at(std::string_view text, std::optional<cluster_time>& out, std::string& error) {
    const std::string forms =
        "use \"now\", a MongoDB timestamp \"<seconds>:<increment>\" or \"<seconds>\", or an "
        "RFC 3339 time such as \"2026-12-06T10:00:00Z\"";
    const std::string quoted = "'" + std::string(text) + "'";
    if (text == "now") {
        out.reset();
        return true;
    }
    cluster_time t;
    if (!text.empty() && std::isdigit(static_cast<unsigned char>(text.front())) &&
        text.find('-') == std::string_view::npos) {
        const auto colon = text.find(':');
        auto secs = parse_u32(text.substr(0, colon));
        auto inc = colon == std::string_view::npos ? std::optional<std::uint32_t>(0)
                                                   : parse_u32(text.substr(colon + 1));
        if (!secs || !inc) {
            error = quoted + " is not a MongoDB timestamp (seconds and increment are each 0.." +
                    std::to_string(UINT32_MAX) + "); " + forms;
            return false;
        }
        t = {*secs, *inc};
    } else {
        auto secs = parse_rfc3339(text);
        if (!secs) {
            error = quoted + " is not a start position; " + forms;
            return false;
        }
        if (*secs < 0 || *secs > static_cast<std::int64_t>(UINT32_MAX)) {
            error = quoted + " is outside the range of MongoDB timestamps (1970-01-01 to " +
                    "2106-02-07); " + forms;
            return false;
        }
        t = {static_cast<std::uint32_t>(*secs), 0};
    }
    if (t.seconds == 0) {
        error = quoted + " is the null timestamp, which names no time; " + forms;
        return false;
    }
    out = t;
    return true;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])))
        ++i;
    std::uint64_t value = 0;
    std::size_t digits = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
        if (value > (UINT64_MAX - 9) / 10)
            return std::nullopt;
        value = value * 10 + static_cast<unsigned>(text[i] - '0');
        ++i;
        ++digits;
    }
    if (digits == 0)
        return std::nullopt;
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])))
        ++i;
    std::string unit;
    for (; i < text.size(); ++i)
        unit.push_back(static_cast<char>(std::tolower(text[i])));
    std::uint64_t mult = 1;
    if (unit.empty() || unit == "b")
        mult = 1;
    else if (unit == "kib" || unit == "k")
        mult = 1ull << 10;
    else if (unit == "mib" || unit == "m")
        mult = 1ull << 20;
    else if (unit == "gib" || unit == "g")
        mult = 1ull << 30;
    else if (unit == "kb")
        mult = 1000;
    else if (unit == "mb")
        mult = 1000 * 1000;
    else if (unit == "gb")
        mult = 1000ull * 1000 * 1000;
    else
        return std::nullopt;
    if (value > UINT64_MAX / mult)
        return std::nullopt;
    return value * mult;
}

std::string redact_uri(std::string_view uri) {
    auto scheme = uri.find("://");
    if (scheme == std::string_view::npos)
        return std::string(uri);
    auto start = scheme + 3;
    auto end = uri.find_first_of("/?#", start);
    auto authority = uri.substr(start, end == std::string_view::npos ? uri.npos : end - start);
    auto at = authority.rfind('@');
    if (at == std::string_view::npos)
        return std::string(uri);
    auto userinfo = authority.substr(0, at);
    auto colon = userinfo.find(':');
    std::string out(uri.substr(0, start));
    out += userinfo.substr(0, colon);
    if (colon != std::string_view::npos)
        out += ":****";
    out += uri.substr(start + at);
    return out;
}

std::string redact_uris_in(std::string_view text) {
    std::string out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto scheme = text.find("://", pos);
        if (scheme == std::string_view::npos)
            break;
        // Back up over the scheme name, then take the URI up to the next blank or quote.
        auto start = scheme;
        while (start > pos &&
               (std::isalnum(static_cast<unsigned char>(text[start - 1])) ||
                text[start - 1] == '+' || text[start - 1] == '-' || text[start - 1] == '.'))
            --start;
        auto end = text.find_first_of(" \t\n\"'", scheme);
        if (end == std::string_view::npos)
            end = text.size();
        out.append(text.substr(pos, start - pos));
        out += redact_uri(text.substr(start, end - start));
        pos = end;
    }
    out.append(text.substr(std::min(pos, text.size())));
    return out;
}

bool parse_config(std::string_view text, std::string_view source_name,
                  const std::map<std::string, std::string>& env, config& out, std::string& error) {
    error.clear();
    toml::table root;
    try {
        root = toml::parse(text, source_name);
    } catch (const toml::parse_error& e) {
        const auto& where = e.source().begin;
        error = std::string(source_name) + ":" + std::to_string(where.line) + ":" +
                std::to_string(where.column) + ": " + std::string(e.description());
        return false;
    }
    const std::string src(source_name);
    config c;
    table_reader top(&root, "", src, error);

    {
        auto m = top.sub("mongodb");
        m.string("uri", c.mongodb.uri);
        m.millis("max_await_ms", c.mongodb.max_await, 1, 3'600'000);
        m.millis("connect_timeout_ms", c.mongodb.connect_timeout, 1, 600'000);
        m.integer("batch_size", c.mongodb.batch_size, 0, 1'000'000);
        m.boolean("prefetch", c.mongodb.prefetch);
        m.string("full_document", c.mongodb.full_document,
                 {"default", "updateLookup", "whenAvailable", "required"});
        m.string("full_document_before_change", c.mongodb.full_document_before_change,
                 {"default", "off", "whenAvailable", "required"});
        m.boolean("show_expanded_events", c.mongodb.show_expanded_events);
        m.boolean("split_large_events", c.mongodb.split_large_events);
        m.strings("pipeline", c.mongodb.pipeline);
        m.string("dns_server", c.mongodb.dns_server);
        std::string history = "fail";
        m.string("on_history_lost", history, {"fail", "restart_from_now"});
        c.pipeline.on_history_lost = history == "restart_from_now"
                                         ? history_lost_policy::restart_from_now
                                         : history_lost_policy::fail;
        std::string start_at;
        m.start_at("start_at", start_at, c.pipeline.start_at);
        m.reject_unknown();
    }

    if (auto* w = root.get("watch")) {
        top.node("watch");
        auto* arr = w->as_array();
        if (!arr || arr->empty()) {
            top.fail("watch", "expected one or more [[watch]] tables");
        } else {
            for (std::size_t i = 0; i < arr->size() && error.empty(); ++i) {
                auto* t = (*arr)[i].as_table();
                std::string path = "watch[" + std::to_string(i) + "]";
                if (!t) {
                    top.fail("watch", "expected [[watch]] tables");
                    break;
                }
                table_reader r(t, path, src, error);
                watch_settings ws;
                r.string("level", ws.level, {"collection", "database", "deployment"});
                r.string("database", ws.database);
                r.strings("collections", ws.collections);
                r.strings("include_collections", ws.include_collections);
                r.strings("exclude_collections", ws.exclude_collections);
                std::optional<cluster_time> ignored;
                r.start_at("start_at", ws.start_at, ignored);
                r.reject_unknown();
                if (!error.empty())
                    break;
                if (ws.level.empty())
                    ws.level = ws.collections.empty() ? "database" : "collection";
                if (ws.level != "deployment" && !valid_name(ws.database)) {
                    r.fail("database", "required for level = \"" + ws.level + "\"");
                } else if (ws.level == "collection" && ws.collections.empty()) {
                    r.fail("collections",
                           "level = \"collection\" needs a non-empty list of collections");
                } else if (ws.level != "collection" && !ws.collections.empty()) {
                    r.fail("collections",
                           "only for level = \"collection\"; use "
                           "include_collections to filter a " +
                               ws.level + " stream");
                } else if (!ws.include_collections.empty() && !ws.exclude_collections.empty()) {
                    r.fail("exclude_collections",
                           "set include_collections or "
                           "exclude_collections, not both");
                }
                c.watches.push_back(std::move(ws));
            }
        }
    } else {
        top.fail("watch",
                 "missing: add at least one [[watch]] table, e.g. [[watch]] "
                 "database = \"app\"");
    }

    {
        auto b = top.sub("batch");
        b.integer("max_events", c.pipeline.batch.max_events, 1, 100'000'000);
        b.size("max_bytes", c.pipeline.batch.max_bytes, 1024);
        b.millis("max_age_ms", c.pipeline.batch.max_age, 1, 86'400'000);
        b.reject_unknown();
    }
    {
        auto o = top.sub("output");
        o.string("format", c.output.format, {"jsonl", "csv", "parquet", "avro"});
        o.string("json_mode", c.output.json_mode, {"relaxed", "canonical"});
        o.string("layout", c.output.layout, {"penne", "rigatoni"});
        o.string("csv_delimiter", c.output.csv_delimiter);
        o.string("csv_line_ending", c.output.csv_line_ending, {"crlf", "lf"});
        o.string("compression", c.output.compression,
                 {"zstd", "gzip", "snappy", "deflate", "none"});
        o.integer("compression_level", c.output.compression_level, 0, 22);
        o.string("timestamp_unit", c.output.timestamp_unit, {"millis", "micros"});
        o.string("key_layout", c.output.key_layout);
        o.string("prefix", c.output.prefix);
        o.reject_unknown();
        const auto& fmt = c.output.format;
        if (c.output.compression.empty())
            c.output.compression = fmt == "avro" ? "deflate" : "zstd";
        const auto& comp = c.output.compression;
        if (error.empty() && c.output.csv_delimiter.size() != 1)
            o.fail("csv_delimiter", "'" + c.output.csv_delimiter +
                                        "' must be exactly one character, e.g. \",\" or \"\\t\"");
        if (error.empty() && (fmt == "jsonl" || fmt == "csv") &&
            (comp == "snappy" || comp == "deflate"))
            o.fail("compression", "'" + comp + "' is for parquet/avro; " + fmt +
                                      " objects take zstd, gzip or none");
        if (error.empty() && fmt == "parquet" && comp == "deflate")
            o.fail("compression", "parquet pages take zstd, gzip, snappy or none");
        if (error.empty() && fmt == "avro" && comp == "gzip")
            o.fail("compression", "avro blocks take zstd, deflate, snappy or none");
        if (error.empty() && (comp == "snappy" || comp == "none") &&
            c.output.compression_level != 0)
            o.fail("compression_level", "'" + comp + "' has no levels; leave it 0");
        if (error.empty() && (comp == "gzip" || comp == "deflate") &&
            c.output.compression_level > 9)
            o.fail("compression_level", comp + " levels are 1..9 (0 for the default)");
        if (error.empty() && comp == "zstd" && c.output.compression_level > 19)
            o.fail("compression_level", "zstd levels are 1..19 (0 for the default)");
    }
    {
        auto d = top.sub("destination");
        d.string("type", c.destination.type, {"local", "s3"});
        d.string("path", c.destination.path);
        d.reject_unknown();
        if (error.empty() && c.destination.type == "local" && c.destination.path.empty())
            d.fail("path", "must not be empty");
    }
    read_s3(top, c.destination.type, c.s3, error);
    {
        auto s = top.sub("state");
        s.string("type", c.state.type, {"file", "memory", "redis"});
        s.string("path", c.state.path);
        s.string("url", c.state.url);
        s.string("key_prefix", c.state.key_prefix);
        s.string("tls_ca_file", c.state.tls_ca_file);
        s.millis("connect_timeout_ms", c.state.connect_timeout, 100, 600'000);
        s.millis("command_timeout_ms", c.state.command_timeout, 100, 600'000);
        s.reject_unknown();
        if (error.empty() && c.state.key_prefix.empty())
            s.fail("key_prefix", "must not be empty");
        if (error.empty() && c.state.type == "file" && c.state.path.empty())
            s.fail("path", "must not be empty for type = \"file\"");
    }
    {
        auto l = top.sub("lease");
        const bool enabled_set = l.node("enabled") != nullptr;
        c.lease.enabled = c.state.type == "redis";
        l.boolean("enabled", c.lease.enabled);
        l.millis("ttl_ms", c.pipeline.lease_ttl, 100, 3'600'000);
        l.millis("retry_interval_ms", c.pipeline.lease_retry_interval, 10, 3'600'000);
        l.string("owner", c.lease.owner);
        l.reject_unknown();
        if (error.empty() && enabled_set && c.lease.enabled && c.state.type != "redis")
            l.fail("enabled",
                   "leases live in Redis: set state.type = \"redis\", or remove "
                   "[lease] for a single instance");
        const bool bad_owner = c.lease.owner.size() > 200 ||
                               std::any_of(c.lease.owner.begin(), c.lease.owner.end(), [](char ch) {
                                   return ch == ':' || ch <= ' ' || ch > '~';
                               });
        if (error.empty() && bad_owner)
            l.fail("owner", "'" + c.lease.owner +
                                "' must be at most 200 printable characters without ':' or "
                                "spaces (empty: hostname-pid-random)");
    }
    {
        auto p = top.sub("pipeline");
        p.size("max_buffered_bytes", c.pipeline.max_buffered_bytes, 1 << 20);
        p.integer("max_concurrent_uploads", c.pipeline.max_concurrent_uploads, 1, 1024);
        p.millis("shutdown_timeout_ms", c.pipeline.shutdown_timeout, 0, 3'600'000);
        p.millis("checkpoint_interval_ms", c.pipeline.checkpoint_interval, 10, 3'600'000);
        p.millis("checkpoint_min_interval_ms", c.pipeline.checkpoint_min_interval, 0, 60'000);
        p.integer("threads", c.threads, 1, 256);
        p.reject_unknown();
    }
    {
        auto r = top.sub("retry");
        r.millis("initial_delay_ms", c.pipeline.retry.initial_delay, 1, 600'000);
        r.millis("max_delay_ms", c.pipeline.retry.max_delay, 1, 3'600'000);
        r.reject_unknown();
        if (error.empty() && c.pipeline.retry.max_delay < c.pipeline.retry.initial_delay)
            r.fail("max_delay_ms", "must be at least initial_delay_ms");
    }
    {
        auto l = top.sub("log");
        l.string("level", c.log.level, {"debug", "info", "warn", "error"});
        l.string("format", c.log.format, {"text", "json"});
        l.millis("progress_interval_ms", c.log.progress_interval, 0, 86'400'000);
        l.reject_unknown();
    }
    {
        auto m = top.sub("metrics");
        m.boolean("enabled", c.metrics.enabled);
        m.string("address", c.metrics.address);
        m.integer("port", c.metrics.port, 0, 65535);
        m.string("compat", c.metrics.compat, {"none", "rigatoni"});
        m.boolean("per_collection_labels", c.metrics.per_collection_labels);
        m.integer("max_series", c.metrics.max_series, 1, 10'000'000);
        m.millis("not_ready_after_ms", c.pipeline.not_ready_after, 100, 86'400'000);
        m.reject_unknown();
        if (error.empty() && !valid_ip_address(c.metrics.address))
            m.fail("address", "'" + c.metrics.address +
                                  "' is not an IP address; use e.g. \"127.0.0.1\", \"0.0.0.0\" "
                                  "or \"::\"");
    }
    top.reject_unknown();
    if (!error.empty())
        return false;

    if (auto it = env.find("PENNE_MONGODB_URI"); it != env.end() && !it->second.empty())
        c.mongodb.uri = it->second;
    if (auto it = env.find("PENNE_REDIS_URL"); it != env.end() && !it->second.empty())
        c.state.url = it->second;
    if (c.mongodb.uri.rfind("mongodb://", 0) != 0 &&
        c.mongodb.uri.rfind("mongodb+srv://", 0) != 0) {
        error = src + ": mongodb.uri: '" + redact_uri(c.mongodb.uri) +
                "' must start with mongodb:// or mongodb+srv://";
        return false;
    }

    // Scopes.
    for (const auto& ws : c.watches) {
        const std::size_t first = c.pipeline.scopes.size();
        if (ws.level == "collection") {
            for (const auto& coll : ws.collections) {
                if (!valid_name(coll)) {
                    error = src + ": watch.collections: empty collection name";
                    return false;
                }
                c.pipeline.scopes.push_back(
                    {watch_scope::level::collection, ws.database, coll, {}, {}});
            }
        } else if (ws.level == "database") {
            c.pipeline.scopes.push_back({watch_scope::level::database,
                                         ws.database,
                                         {},
                                         ws.include_collections,
                                         ws.exclude_collections});
        } else {
            c.pipeline.scopes.push_back({watch_scope::level::deployment,
                                         {},
                                         {},
                                         ws.include_collections,
                                         ws.exclude_collections});
        }
        if (!ws.start_at.empty()) {
            std::optional<cluster_time> at;
            std::string why;
            parse_start_at(ws.start_at, at, why);  // validated when the [[watch]] was read
            for (std::size_t k = first; k < c.pipeline.scopes.size(); ++k)
                c.pipeline.scope_start_at[c.pipeline.scopes[k].id()] = at;
        }
    }
    for (std::size_t i = 0; i < c.pipeline.scopes.size(); ++i) {
        for (std::size_t j = i + 1; j < c.pipeline.scopes.size(); ++j) {
            if (c.pipeline.scopes[i].id() == c.pipeline.scopes[j].id()) {
                error = src + ": watch: scope '" + c.pipeline.scopes[i].id() + "' is listed twice";
                return false;
            }
        }
    }
    out = std::move(c);
    return true;
}

bool parse_s3_settings(std::string_view toml_text, std::string_view source_name, s3_settings& out,
                       std::string& error) {
    error.clear();
    const std::string src(source_name);
    toml::table root;
    try {
        root = toml::parse(toml_text, src);
    } catch (const toml::parse_error& e) {
        const auto& where = e.source().begin;
        error = src + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) + ": " +
                std::string(e.description());
        return false;
    }
    std::string type = "s3";
    if (auto* d = root.get_as<toml::table>("destination"))
        type = d->get_as<std::string>("type") ? **d->get_as<std::string>("type") : "local";
    table_reader top(&root, "", src, error);
    s3_settings s;
    read_s3(top, type == "s3" ? "s3" : "", s, error);
    if (!error.empty())
        return false;
    out = std::move(s);
    return true;
}

}  // namespace penne
