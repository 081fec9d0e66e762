#include <penne/redis/error.hpp>
#include <penne/redis/state_store.hpp>

#include <boost/asio/cancellation_state.hpp>
#include <boost/asio/this_coro.hpp>

#include <algorithm>
#include <charconv>
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
// ARGV: owner, fence, entry key, durable flag, payload.
const script& record_script() {
    static const script s(std::string(fence_check) + R"lua(
local n = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4] .. ':' .. n .. ':' .. ARGV[5])
return {'ok', n}
)lua");
    return s;
}

// KEYS: manifest, watermark, fence, lease.
// ARGV: owner, fence, number of durable keys (n), '1' when a watermark follows else '0',
//       watermark hex, n durable keys, then the keys to retire.
const script& commit_script() {
    static const script s(std::string(fence_check) + R"lua(
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
for i = 6 + n, #ARGV do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
return {'ok', 0}
)lua");
    return s;
}

// KEYS: watermark, manifest. A consistent snapshot of both.
const script& load_script() {
    static const script s(R"lua(
return {redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2])}
)lua");
    return s;
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
    return {
        .keys = {k.manifest, k.recorded, k.fence, k.lease},
        .args = {f.owner, std::to_string(f.fence), e.key, e.durable ? "1" : "0", encode_entry(e)}};
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

state_store::state_store(connection& conn, state_store_options opts)
    : conn_(conn), opts_(std::move(opts)) {}

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
    const auto k = keys_for(opts_.key_prefix, scope_id);
    const std::vector<std::string> keys = {k.watermark, k.manifest};
    const std::vector<std::string> no_args;
    value reply;
    error_code ec = co_await conn_.eval(load_script(), keys, no_args, reply, diag);
    if (ec) {
        diag.message = "state load for scope '" + scope_id + "': " + diag.message;
        co_return ec;
    }
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
                                               const script_call& call, const char* what,
                                               diagnostics& diag) {
    auto cs = co_await asio::this_coro::cancellation_state;
    if (cancelled(cs)) {
        diag.message =
            std::string(what) + " for scope '" + scope_id + "' cancelled before it started";
        co_return errc::cancelled;
    }
    value reply;
    error_code ec = co_await conn_.eval(s, call.keys, call.args, reply, diag);
    if (ec) {
        diag.message = std::string(what) + " for scope '" + scope_id + "': " + diag.message;
        co_return ec;
    }
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
    const auto call = record_call(keys_for(opts_.key_prefix, scope_id), fence, entry);
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

asio::awaitable<error_code> state_store::commit(const std::string& scope_id,
                                                const commit_request& req, diagnostics& diag) {
    const fence_token unfenced;
    error_code ec = co_await commit(scope_id, req, unfenced, diag);
    co_return ec;
}

}  // namespace penne::redis
