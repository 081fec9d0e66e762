#include <penne/redis/error.hpp>
#include <penne/redis/state_store.hpp>

#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <charconv>
#include <ctime>
#include <random>
#include <set>

namespace penne::redis {
namespace {

namespace asio = boost::asio;

// Read the state with `auto cs = co_await asio::this_coro::cancellation_state;` in the
// operation itself (g++ 12 miscompiles `if (co_await ...)`).
bool cancelled(const asio::cancellation_state& cs) noexcept {
    return cs.cancelled() != asio::cancellation_type::none;
}

constexpr std::string_view payload_version = "1;";

// Defines penne_store_lost(key, want): nil while `key` names store `want`; otherwise the
// reply {'lost', <value now>, <value found>}, after writing the tombstone unless one is
// there already or the identity there acknowledges this loss. TIME before a write needs
// effects replication: the default from Redis 5, asked for on older servers.
constexpr std::string_view identity_lua = R"lua(
if redis.replicate_commands then redis.replicate_commands() end
local function penne_store_lost(key, want)
  local cur = redis.call('GET', key)
  if cur and string.sub(cur, 1, #want + 1) == want .. ':' then
    return nil
  end
  if cur and (string.sub(cur, 1, 5) == 'lost:' or string.find(cur, ':ack:' .. want, 1, true)) then
    return {'lost', cur, cur}
  end
  local t = redis.call('TIME')
  local tomb = 'lost:' .. want .. ':' .. t[1]
  redis.call('SET', key, tomb)
  return {'lost', tomb, cur or ''}
end
)lua";

// Every store script checks the identity first: the last key, the last argument.
constexpr std::string_view identity_first = R"lua(
local lost = penne_store_lost(KEYS[#KEYS], ARGV[#ARGV])
if lost then return lost end
)lua";

std::string checked(std::string_view body) {
    return std::string(identity_lua) + std::string(identity_first) + std::string(body);
}

// The fence check shared by every write script. Fences are compared as decimal strings
// (length first), exact for 64-bit values where Lua numbers are not.
constexpr std::string_view fence_check = R"lua(
local function older(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local stored = redis.call('GET', KEYS[3]) or '0'
if string.find(ARGV[2], '^%d+$') == nil or older(ARGV[2], stored) then
  return {'fenced', stored, redis.call('GET', KEYS[4]) or ''}
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[1] .. ':' .. ARGV[2] then
  return {'fenced', stored, redis.call('GET', KEYS[4]) or ''}
end
)lua";

// KEYS: manifest, recorded, fence, lease.
// ARGV: owner, fence, then per entry (in recording order): entry key, durable flag,
// payload; the identity check's argument comes last. One call records every entry given,
// atomically.
const script& record_script() {
    static const script s(checked(fence_check) + R"lua(
local n = 0
for i = 3, #ARGV - 3, 3 do
  n = redis.call('INCR', KEYS[2])
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1] .. ':' .. n .. ':' .. ARGV[i + 2])
end
return {'ok', n}
)lua");
    return s;
}

// KEYS: manifest, watermark, fence, lease.
// ARGV: owner, fence, number of durable keys (n), '1' when a watermark follows else '0',
//       watermark hex, n durable keys, then the keys to retire (up to the store id).
const script& commit_script() {
    static const script s(checked(fence_check) + R"lua(
local n = tonumber(ARGV[3])
for i = 6, 5 + n do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v and string.sub(v, 1, 1) ~= '1' then
    redis.call('HSET', KEYS[1], ARGV[i], '1' .. string.sub(v, 2))
  end
end
if ARGV[4] == '1' then
  redis.call('SET', KEYS[2], ARGV[5])
end
for i = 6 + n, #ARGV - 1 do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
return {'ok', 0}
)lua");
    return s;
}

// KEYS: watermark, manifest. A consistent snapshot of both.
const script& load_script() {
    static const script s(checked(R"lua(
return {redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2])}
)lua"));
    return s;
}

// KEYS: store. ARGV: a new id, the id opened before ("" at the first open).
const script& open_script() {
    static const script s(std::string(identity_lua) + R"lua(
if ARGV[2] ~= '' then
  local lost = penne_store_lost(KEYS[1], ARGV[2])
  if lost then return lost end
end
local cur = redis.call('GET', KEYS[1])
if cur then return {'found', cur} end
local t = redis.call('TIME')
local v = ARGV[1] .. ':' .. t[1]
redis.call('SET', KEYS[1], v)
return {'created', v}
)lua");
    return s;
}

// KEYS: store. ARGV: a new id. Replaces a tombstone by an identity acknowledging it.
const script& ack_script() {
    static const script s(std::string(identity_lua) + R"lua(
local cur = redis.call('GET', KEYS[1])
if not cur or string.sub(cur, 1, 5) ~= 'lost:' then return {'none', cur or ''} end
local old = string.match(cur, '^lost:([^:]*):')
if not old then return {'none', cur} end
local t = redis.call('TIME')
local v = ARGV[1] .. ':' .. t[1] .. ':ack:' .. old
redis.call('SET', KEYS[1], v)
return {'acked', cur, v}
)lua");
    return s;
}

bool is_store_id(std::string_view s) {
    return s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
           });
}

bool parse_i64(std::string_view s, std::int64_t& out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

std::string utc(std::int64_t unix_seconds) {
    const std::time_t t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    char buf[32];
    if (!::gmtime_r(&t, &tm) || std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return std::to_string(unix_seconds);
    return buf;
}

// A glob pattern matching `text` literally.
std::string glob_escape(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\')
            out += '\\';
        out += c;
    }
    return out;
}

void put_netstring(std::string& out, std::string_view s) {
    out += std::to_string(s.size());
    out += ':';
    out += s;
    out += ',';
}

bool take_netstring(std::string_view& in, std::string_view& out) {
    std::size_t len = 0;
    auto [end, ec] = std::from_chars(in.data(), in.data() + in.size(), len);
    if (ec != std::errc() || end == in.data() || end == in.data() + in.size() || *end != ':')
        return false;
    const std::size_t start = static_cast<std::size_t>(end - in.data()) + 1;
    if (in.size() - start < len + 1 || in[start + len] != ',')
        return false;
    out = in.substr(start, len);
    in.remove_prefix(start + len + 1);
    return true;
}

bool parse_u64(std::string_view s, std::uint64_t& out) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

bool token_from_hex(std::string_view hex, resume_token& out) {
    out.clear();
    return hex.empty() || out.assign_hex(hex);
}

}  // namespace

std::string escape_scope_id(std::string_view scope_id) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(scope_id.size());
    for (char c : scope_id) {
        const auto u = static_cast<unsigned char>(c);
        if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
            c == '.' || c == '_' || c == '-') {
            out += c;
        } else {
            out += '%';
            out += digits[u >> 4];
            out += digits[u & 0xf];
        }
    }
    return out;
}

scope_keys keys_for(std::string_view prefix, std::string_view scope_id) {
    const std::string tag = "{" + escape_scope_id(scope_id) + "}";
    const std::string p(prefix);
    return {.watermark = p + ":scope:" + tag + ":watermark",
            .manifest = p + ":scope:" + tag + ":manifest",
            .recorded = p + ":scope:" + tag + ":recorded",
            .fence = p + ":fence:" + tag,
            .lease = p + ":lease:" + tag};
}

std::string encode_entry(const manifest_entry& e) {
    std::string out(payload_version);
    put_netstring(out, std::to_string(e.seq));
    put_netstring(out, e.key);
    put_netstring(out, e.db);
    put_netstring(out, e.coll);
    put_netstring(out, e.first.to_hex());
    put_netstring(out, e.last.to_hex());
    put_netstring(out, std::to_string(e.count));
    return out;
}

bool decode_stored_entry(std::string_view stored, manifest_entry& out, std::uint64_t& recorded) {
    if (stored.size() < 2 || (stored[0] != '0' && stored[0] != '1') || stored[1] != ':')
        return false;
    manifest_entry e;
    e.durable = stored[0] == '1';
    stored.remove_prefix(2);
    const auto colon = stored.find(':');
    if (colon == std::string_view::npos || !parse_u64(stored.substr(0, colon), recorded))
        return false;
    stored.remove_prefix(colon + 1);
    if (!stored.starts_with(payload_version))
        return false;
    stored.remove_prefix(payload_version.size());
    std::string_view f[7];
    for (auto& field : f) {
        if (!take_netstring(stored, field))
            return false;
    }
    if (!stored.empty() || !parse_u64(f[0], e.seq) || !parse_u64(f[6], e.count) ||
        !token_from_hex(f[4], e.first) || !token_from_hex(f[5], e.last))
        return false;
    e.key = f[1];
    e.db = f[2];
    e.coll = f[3];
    out = std::move(e);
    return true;
}

script_call record_call(const scope_keys& k, const fence_token& f, const manifest_entry& e) {
    return record_call(k, f, std::span<const manifest_entry>(&e, 1));
}

script_call record_call(const scope_keys& k, const fence_token& f,
                        std::span<const manifest_entry> entries) {
    script_call c{.keys = {k.manifest, k.recorded, k.fence, k.lease},
                  .args = {f.owner, std::to_string(f.fence)}};
    c.args.reserve(2 + 3 * entries.size());
    for (const auto& e : entries) {
        c.args.push_back(e.key);
        c.args.push_back(e.durable ? "1" : "0");
        c.args.push_back(encode_entry(e));
    }
    return c;
}

script_call commit_call(const scope_keys& k, const fence_token& f, const commit_request& req) {
    script_call c{
        .keys = {k.manifest, k.watermark, k.fence, k.lease},
        .args = {f.owner, std::to_string(f.fence), std::to_string(req.durable_keys.size()),
                 req.watermark ? "1" : "0", req.watermark ? req.watermark->to_hex() : ""}};
    c.args.insert(c.args.end(), req.durable_keys.begin(), req.durable_keys.end());
    c.args.insert(c.args.end(), req.retire_keys.begin(), req.retire_keys.end());
    return c;
}

std::string store_key(std::string_view prefix) {
    return std::string(prefix) + ":store";
}

std::string store_marker::value() const {
    switch (state) {
        case kind::absent:
            return {};
        case kind::live:
            return id + ":" + std::to_string(time) +
                   (acknowledges.empty() ? "" : ":ack:" + acknowledges);
        case kind::lost:
            return "lost:" + id + ":" + std::to_string(time);
    }
    return {};
}

bool parse_store_marker(std::string_view value, store_marker& out) {
    store_marker m;
    if (value.empty()) {
        out = m;
        return true;
    }
    std::vector<std::string_view> parts;
    for (std::size_t start = 0;;) {
        const auto colon = value.find(':', start);
        parts.push_back(value.substr(start, colon - start));
        if (colon == std::string_view::npos)
            break;
        start = colon + 1;
    }
    if (parts.size() == 3 && parts[0] == "lost" && is_store_id(parts[1]) &&
        parse_i64(parts[2], m.time)) {
        m.state = store_marker::kind::lost;
        m.id = parts[1];
    } else if ((parts.size() == 2 ||
                (parts.size() == 4 && parts[2] == "ack" && is_store_id(parts[3]))) &&
               is_store_id(parts[0]) && parse_i64(parts[1], m.time)) {
        m.state = store_marker::kind::live;
        m.id = parts[0];
        if (parts.size() == 4)
            m.acknowledges = parts[3];
    } else {
        return false;
    }
    out = std::move(m);
    return true;
}

std::string new_store_id() {
    static constexpr char digits[] = "0123456789abcdef";
    std::random_device rd;
    std::string id;
    for (int i = 0; i < 4; ++i) {
        auto r = static_cast<std::uint32_t>(rd());
        for (int j = 0; j < 8; ++j, r >>= 4)
            id += digits[r & 0xf];
    }
    return id;
}

std::string store_lost_message(std::string_view prefix, std::string_view lost_id,
                               const store_marker& found) {
    const std::string key = store_key(prefix);
    std::string m = "Redis lost penne's state: store id " + std::string(lost_id) + " is gone (";
    if (found.state == store_marker::kind::live && found.acknowledges == lost_id) {
        return m + "an operator acknowledged its loss with `penne state ack-loss`; " + key +
               " names store " + found.id + " since " + utc(found.time) +
               "). This process still held the lost state and stops; start it again to run on "
               "the new store, from now";
    }
    if (found.state == store_marker::kind::absent)
        m += key + " is missing";
    else if (found.state == store_marker::kind::live)
        m += key + " named store " + found.id + ", created at " + utc(found.time) +
             " after the loss";
    else
        m += "found lost at " + utc(found.time);
    return m +
           ": was redis-server restarted without persistence, or flushed?). Restarting from "
           "now would skip every event since then. Restore Redis from its AOF/RDB with every "
           "penne stopped, or acknowledge the gap with `penne state ack-loss --config <file> "
           "--yes`; until then every instance refuses to start (" +
           key + " holds a tombstone)";
}

bool store_lost_reply(std::string_view prefix, std::string_view want, const value& reply,
                      error_code& ec, diagnostics& diag) {
    if (reply.kind != value_kind::array || reply.elements.size() != 3 ||
        reply.elements[0].kind != value_kind::bulk || reply.elements[0].text != "lost")
        return false;
    store_marker found;
    if (!parse_store_marker(reply.elements[2].text, found)) {
        found = {};
        found.state = store_marker::kind::lost;  // unreadable: report it as a tombstone
    }
    diag.message = store_lost_message(prefix, want, found);
    ec = make_error_code(redis_errc::store_lost);
    return true;
}

std::string_view identity_check_lua() {
    return identity_lua;
}

asio::awaitable<error_code> read_store_marker(connection& conn, std::string_view prefix,
                                              store_marker& out, diagnostics& diag) {
    const std::string key = store_key(prefix);
    request req({"GET", key});
    req.idempotent = true;
    value reply;
    error_code ec = co_await conn.call(req, reply, diag);
    if (ec) {
        diag.message = "reading " + key + ": " + diag.message;
        co_return ec;
    }
    if (reply.kind != value_kind::nil && reply.kind != value_kind::bulk) {
        diag.message = "reading " + key + ": unexpected reply " + to_string(reply);
        co_return make_error_code(redis_errc::unexpected_reply);
    }
    if (!parse_store_marker(reply.text, out)) {
        diag.message = key + " holds '" + reply.text +
                       "', which is not a penne store identity (was it written by a newer "
                       "penne, or by another program?)";
        co_return make_error_code(errc::state_corrupt);
    }
    co_return error_code{};
}

asio::awaitable<error_code> acknowledge_loss(connection& conn, std::string_view prefix,
                                             ack_result& out, diagnostics& diag) {
    const std::string key = store_key(prefix);
    const std::vector<std::string> keys = {key};
    const std::vector<std::string> args = {new_store_id()};
    value reply;
    error_code ec = co_await conn.eval(ack_script(), keys, args, reply, diag);
    if (ec) {
        diag.message = "acknowledging the loss in " + key + ": " + diag.message;
        co_return ec;
    }
    const auto& e = reply.elements;
    const bool shaped =
        reply.kind == value_kind::array && !e.empty() && e[0].kind == value_kind::bulk &&
        ((e[0].text == "none" && e.size() == 2) || (e[0].text == "acked" && e.size() == 3));
    if (!shaped) {
        diag.message =
            "acknowledging the loss in " + key + ": unexpected script reply " + to_string(reply);
        co_return make_error_code(redis_errc::unexpected_reply);
    }
    ack_result r;
    if (!parse_store_marker(e[1].text, r.before) ||
        !parse_store_marker(e[0].text == "acked" ? e[2].text : e[1].text, r.after)) {
        diag.message = key + " holds '" + e[1].text +
                       "', which is not a penne store identity (was it written by a newer "
                       "penne, or by another program?)";
        co_return make_error_code(errc::state_corrupt);
    }
    out = std::move(r);
    co_return error_code{};
}

state_store::state_store(connection& conn, state_store_options opts)
    : conn_(conn), opts_(std::move(opts)) {}

asio::awaitable<error_code> state_store::open(open_result& out, diagnostics& diag) {
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cancelled(cs)) {
        diag.message = "opening the state store cancelled before it started";
        co_return errc::cancelled;
    }
    std::string want;
    {
        std::lock_guard lock(mu_);
        want = id_;
    }
    const std::string key = store_key(opts_.key_prefix);
    const std::vector<std::string> keys = {key};
    const std::vector<std::string> args = {new_store_id(), want};
    value reply;
    error_code ec = co_await conn_.eval(open_script(), keys, args, reply, diag);
    if (ec) {
        diag.message = "opening the state store (" + key + "): " + diag.message;
        co_return ec;
    }
    if (store_lost_reply(opts_.key_prefix, want, reply, ec, diag))
        co_return ec;
    const auto& e = reply.elements;
    if (reply.kind != value_kind::array || e.size() != 2 || e[0].kind != value_kind::bulk ||
        e[1].kind != value_kind::bulk || (e[0].text != "found" && e[0].text != "created")) {
        diag.message =
            "opening the state store (" + key + "): unexpected script reply " + to_string(reply);
        co_return make_error_code(redis_errc::unexpected_reply);
    }
    open_result r;
    r.created = e[0].text == "created";
    if (!parse_store_marker(e[1].text, r.identity) ||
        r.identity.state == store_marker::kind::absent) {
        diag.message = key + " holds '" + e[1].text +
                       "', which is not a penne store identity (was it written by a newer "
                       "penne, or by another program?)";
        co_return make_error_code(errc::state_corrupt);
    }
    if (r.identity.state == store_marker::kind::lost) {
        diag.message = store_lost_message(opts_.key_prefix, r.identity.id, r.identity);
        co_return make_error_code(redis_errc::store_lost);
    }
    if (r.created) {
        // State without an identity: written before penne had store identities.
        const std::string pattern = glob_escape(opts_.key_prefix) + ":scope:*";
        std::string cursor = "0";
        do {
            request req({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
            req.idempotent = true;
            value page;
            ec = co_await conn_.call(req, page, diag);
            if (ec) {
                diag.message = "opening the state store (SCAN): " + diag.message;
                co_return ec;
            }
            if (page.kind != value_kind::array || page.elements.size() != 2 ||
                page.elements[0].kind != value_kind::bulk ||
                page.elements[1].kind != value_kind::array) {
                diag.message = "opening the state store: unexpected SCAN reply " + to_string(page);
                co_return make_error_code(redis_errc::unexpected_reply);
            }
            cursor = page.elements[0].text;
            r.had_state = !page.elements[1].elements.empty();
        } while (cursor != "0" && !r.had_state);
    }
    bool first = false;
    {
        std::lock_guard lock(mu_);
        first = id_.empty();
        id_ = r.identity.id;
    }
    if (opts_.log && (first || r.created)) {
        if (r.created && !r.had_state)
            opts_.log(log_level::warn,
                      "state store is empty: every scope starts from now (first start); created "
                      "store id " +
                          r.identity.id + " in " + key +
                          " (a Redis that lost its data while no penne ran looks the same: run "
                          "redis-server with appendonly yes)");
        else if (r.created)
            opts_.log(log_level::warn, "state store had no identity in " + key +
                                           " but holds scope state (written by an older penne): "
                                           "adopted it as store id " +
                                           r.identity.id);
        else
            opts_.log(log_level::info,
                      "state store id " + r.identity.id + " (created " + utc(r.identity.time) +
                          (r.identity.acknowledges.empty()
                               ? ")"
                               : ", when the loss of store " + r.identity.acknowledges +
                                     " was acknowledged)"));
    }
    out = std::move(r);
    co_return error_code{};
}

asio::awaitable<error_code> state_store::store_id(std::string& out, diagnostics& diag) {
    {
        std::lock_guard lock(mu_);
        if (!id_.empty()) {
            out = id_;
            co_return error_code{};
        }
    }
    open_result r;
    error_code ec = co_await open(r, diag);
    if (!ec)
        out = r.identity.id;
    co_return ec;
}

std::string state_store::describe() const {
    return "redis:" + conn_.describe() + " prefix=" + opts_.key_prefix;
}

asio::awaitable<error_code> state_store::load(const std::string& scope_id, scope_state& out,
                                              diagnostics& diag) {
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cancelled(cs)) {
        diag.message = "state load for scope '" + scope_id + "' cancelled before it started";
        co_return errc::cancelled;
    }
    std::string id;
    error_code ec = co_await store_id(id, diag);
    if (ec)
        co_return ec;
    const auto k = keys_for(opts_.key_prefix, scope_id);
    const std::vector<std::string> keys = {k.watermark, k.manifest, store_key(opts_.key_prefix)};
    const std::vector<std::string> args = {id};
    value reply;
    ec = co_await conn_.eval(load_script(), keys, args, reply, diag);
    if (ec) {
        diag.message = "state load for scope '" + scope_id + "': " + diag.message;
        co_return ec;
    }
    if (store_lost_reply(opts_.key_prefix, id, reply, ec, diag))
        co_return ec;
    auto corrupt = [&](const std::string& why) {
        diag.message = "Redis state of scope '" + scope_id + "' (" + k.manifest + ", " +
                       k.watermark + ") is unreadable: " + why +
                       "; inspect or delete those keys (was it written by a newer penne?)";
        return make_error_code(errc::state_corrupt);
    };
    if (reply.kind != value_kind::array || reply.elements.size() != 2 ||
        reply.elements[1].kind != value_kind::array || reply.elements[1].elements.size() % 2)
        co_return corrupt("unexpected script reply " + to_string(reply));
    scope_state state;
    const value& wm = reply.elements[0];
    if (wm.kind == value_kind::bulk) {
        state.watermark.emplace();
        if (!token_from_hex(wm.text, *state.watermark))
            co_return corrupt("the watermark is not a hex-encoded BSON document");
    } else if (!wm.is_nil()) {
        co_return corrupt("the watermark is not a string");
    }
    struct loaded {
        manifest_entry entry;
        std::uint64_t recorded;
    };
    std::vector<loaded> entries;
    const auto& fields = reply.elements[1].elements;
    entries.reserve(fields.size() / 2);
    for (std::size_t i = 0; i < fields.size(); i += 2) {
        loaded l;
        if (fields[i].kind != value_kind::bulk || fields[i + 1].kind != value_kind::bulk ||
            !decode_stored_entry(fields[i + 1].text, l.entry, l.recorded))
            co_return corrupt("manifest entry '" + fields[i].text + "' is malformed");
        if (l.entry.key != fields[i].text)
            co_return corrupt("manifest entry '" + fields[i].text + "' names key '" + l.entry.key +
                              "'");
        entries.push_back(std::move(l));
    }
    std::sort(entries.begin(), entries.end(), [](const loaded& a, const loaded& b) {
        return a.entry.seq != b.entry.seq ? a.entry.seq < b.entry.seq : a.recorded < b.recorded;
    });
    for (auto& l : entries)
        state.entries.push_back(std::move(l.entry));
    out = std::move(state);
    co_return error_code{};
}

asio::awaitable<error_code> state_store::write(const std::string& scope_id, const script& s,
                                               script_call call, const char* what,
                                               diagnostics& diag) {
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cancelled(cs)) {
        diag.message =
            std::string(what) + " for scope '" + scope_id + "' cancelled before it started";
        co_return errc::cancelled;
    }
    std::string id;
    error_code ec = co_await store_id(id, diag);
    if (ec)
        co_return ec;
    call.keys.push_back(store_key(opts_.key_prefix));
    call.args.push_back(id);
    value reply;
    ec = co_await conn_.eval(s, call.keys, call.args, reply, diag);
    if (ec) {
        diag.message = std::string(what) + " for scope '" + scope_id + "': " + diag.message;
        co_return ec;
    }
    if (store_lost_reply(opts_.key_prefix, id, reply, ec, diag))
        co_return ec;
    if (reply.kind != value_kind::array || reply.elements.empty() ||
        reply.elements[0].kind != value_kind::bulk) {
        diag.message = std::string(what) + " for scope '" + scope_id +
                       "': unexpected script reply " + to_string(reply);
        co_return make_error_code(redis_errc::unexpected_reply);
    }
    if (reply.elements[0].text == "fenced") {
        const std::string stored =
            reply.elements.size() > 1 ? reply.elements[1].text : std::string("?");
        const std::string holder =
            reply.elements.size() > 2 ? reply.elements[2].text : std::string();
        diag.message = std::string(what) + " for scope '" + scope_id + "' refused: owner '" +
                       call.args[0] + "' with fence " + call.args[1] +
                       " is not the lease holder (stored fence " + stored +
                       (holder.empty() ? ", no lease held)" : ", lease " + holder + ")");
        co_return errc::lease_lost;
    }
    if (reply.elements[0].text != "ok") {
        diag.message = std::string(what) + " for scope '" + scope_id +
                       "': unexpected script reply " + to_string(reply);
        co_return make_error_code(redis_errc::unexpected_reply);
    }
    co_return error_code{};
}

asio::awaitable<error_code> state_store::record(const std::string& scope_id,
                                                const manifest_entry& entry,
                                                const fence_token& fence, diagnostics& diag) {
    error_code ec = co_await record_many(scope_id, std::span(&entry, 1), fence, diag);
    co_return ec;
}

asio::awaitable<error_code> state_store::record_many(const std::string& scope_id,
                                                     std::span<const manifest_entry> entries,
                                                     const fence_token& fence, diagnostics& diag) {
    if (entries.empty())
        co_return error_code{};
    const auto call = record_call(keys_for(opts_.key_prefix, scope_id), fence, entries);
    error_code ec = co_await write(scope_id, record_script(), call, "manifest record", diag);
    co_return ec;
}

asio::awaitable<error_code> state_store::commit(const std::string& scope_id,
                                                const commit_request& req, const fence_token& fence,
                                                diagnostics& diag) {
    const auto call = commit_call(keys_for(opts_.key_prefix, scope_id), fence, req);
    error_code ec = co_await write(scope_id, commit_script(), call, "state commit", diag);
    co_return ec;
}

asio::awaitable<error_code> state_store::record(const std::string& scope_id,
                                                const manifest_entry& entry, diagnostics& diag) {
    const fence_token unfenced;
    error_code ec = co_await record(scope_id, entry, unfenced, diag);
    co_return ec;
}

asio::awaitable<error_code> state_store::record_many(const std::string& scope_id,
                                                     std::span<const manifest_entry> entries,
                                                     diagnostics& diag) {
    const fence_token unfenced;
    error_code ec = co_await record_many(scope_id, entries, unfenced, diag);
    co_return ec;
}

asio::awaitable<error_code> state_store::commit(const std::string& scope_id,
                                                const commit_request& req, diagnostics& diag) {
    const fence_token unfenced;
    error_code ec = co_await commit(scope_id, req, unfenced, diag);
    co_return ec;
}

}  // namespace penne::redis
