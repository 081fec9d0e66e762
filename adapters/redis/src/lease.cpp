#include <penne/redis/error.hpp>
#include <penne/redis/lease.hpp>

#include <unistd.h>

#include <array>
#include <cstdio>
#include <random>

namespace penne::redis {
namespace {

namespace asio = boost::asio;

// Scripts that must not succeed on a Redis that lost the state start with the store's
// identity check (state_store.hpp): the store key last in KEYS, the store id last in ARGV.
std::string checked(std::string_view body) {
    return std::string(identity_check_lua()) + R"lua(
local lost = penne_store_lost(KEYS[#KEYS], ARGV[#ARGV])
if lost then return lost end
)lua" + std::string(body);
}

// KEYS: lease, fence, released, store. ARGV: owner, ttl ms, store id.
// The current holder is everything before the value's last ':' (owner ids have no ':').
const script& acquire_script() {
    static const script s(checked(R"lua(
local cur = redis.call('GET', KEYS[1])
if cur and string.match(cur, '^(.*):%d+$') ~= ARGV[1] then
  return {'held', cur}
end
local prev = redis.call('GET', KEYS[2]) or '0'
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. fence, 'PX', ARGV[2])
local takeover = 0
if prev ~= '0' and redis.call('GET', KEYS[3]) ~= prev then
  takeover = 1
end
return {'ok', fence, takeover}
)lua"));
    return s;
}

// KEYS: lease, store. ARGV: "<owner>:<fence>", ttl ms, store id.
const script& refresh_script() {
    static const script s(checked(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
)lua"));
    return s;
}

// KEYS: lease, released. ARGV: "<owner>:<fence>", fence.
const script& release_script() {
    static const script s(R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], ARGV[2])
  return 1
end
return 0
)lua");
    return s;
}

// KEYS: instances. ARGV: owner, ttl ms. Server time, so that instances' clocks do not matter.
const script& heartbeat_script() {
    static const script s(R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < 2 * ttl then
  redis.call('PEXPIRE', KEYS[1], 2 * ttl)
end
return redis.call('ZCARD', KEYS[1])
)lua");
    return s;
}

std::string lease_value(const std::string& owner, std::uint64_t fence) {
    return owner + ":" + std::to_string(fence);
}

error_code unexpected(const char* what, const std::string& scope_id, const value& reply,
                      diagnostics& diag) {
    diag.message = std::string(what) + " for scope '" + scope_id + "': unexpected script reply " +
                   to_string(reply);
    return make_error_code(redis_errc::unexpected_reply);
}

}  // namespace

std::string default_owner_id() {
    std::array<char, 256> host{};
    if (::gethostname(host.data(), host.size() - 1) != 0 || host[0] == '\0')
        std::snprintf(host.data(), host.size(), "penne");
    std::string h;
    for (const char* p = host.data(); *p; ++p)
        h += (*p == ':' || *p <= ' ' || *p > '~') ? '_' : *p;
    std::random_device rd;
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "%08x", static_cast<unsigned>(rd()));
    return h + "-" + std::to_string(::getpid()) + "-" + suffix;
}

bool valid_owner_id(std::string_view owner, std::string& why) {
    if (owner.empty()) {
        why = "must not be empty";
        return false;
    }
    if (owner.size() > 200) {
        why = "must be at most 200 characters";
        return false;
    }
    for (char c : owner) {
        if (c == ':' || c <= ' ' || c > '~') {
            why = "may only hold printable ASCII characters other than ':' and spaces";
            return false;
        }
    }
    return true;
}

std::string released_key(std::string_view prefix, std::string_view scope_id) {
    return std::string(prefix) + ":released:{" + escape_scope_id(scope_id) + "}";
}

std::string instances_key(std::string_view prefix) {
    return std::string(prefix) + ":instances";
}

lease_store::lease_store(connection& conn, state_store& store, lease_options opts)
    : conn_(conn),
      store_(store),
      prefix_(std::move(opts.key_prefix)),
      owner_(opts.owner.empty() ? default_owner_id() : std::move(opts.owner)) {}

asio::awaitable<error_code> lease_store::acquire(const std::string& scope_id,
                                                 std::chrono::milliseconds ttl, lease_grant& out,
                                                 diagnostics& diag) {
    std::string id;
    error_code ec = co_await store_.store_id(id, diag);
    if (ec)
        co_return ec;
    const auto k = keys_for(prefix_, scope_id);
    const std::vector<std::string> keys = {k.lease, k.fence, released_key(prefix_, scope_id),
                                           store_key(prefix_)};
    const std::vector<std::string> args = {owner_, std::to_string(ttl.count()), id};
    value reply;
    ec = co_await conn_.eval(acquire_script(), keys, args, reply, diag);
    if (ec) {
        diag.message = "lease acquire for scope '" + scope_id + "': " + diag.message;
        co_return ec;
    }
    if (store_lost_reply(prefix_, id, reply, ec, diag))
        co_return ec;
    if (reply.kind != value_kind::array || reply.elements.empty() ||
        reply.elements[0].kind != value_kind::bulk)
        co_return unexpected("lease acquire", scope_id, reply, diag);
    const auto& e = reply.elements;
    if (e[0].text == "held") {
        diag.message = "scope '" + scope_id + "' is held by " +
                       (e.size() > 1 ? "'" + e[1].text + "'" : std::string("another owner"));
        co_return errc::lease_lost;
    }
    if (e[0].text != "ok" || e.size() != 3 || e[1].kind != value_kind::integer ||
        e[2].kind != value_kind::integer || e[1].integer <= 0)
        co_return unexpected("lease acquire", scope_id, reply, diag);
    out.fence = static_cast<std::uint64_t>(e[1].integer);
    out.takeover = e[2].integer != 0;
    co_return error_code{};
}

asio::awaitable<error_code> lease_store::refresh(const std::string& scope_id, std::uint64_t fence,
                                                 std::chrono::milliseconds ttl, diagnostics& diag) {
    std::string id;
    error_code ec = co_await store_.store_id(id, diag);
    if (ec)
        co_return ec;
    const auto k = keys_for(prefix_, scope_id);
    const std::vector<std::string> keys = {k.lease, store_key(prefix_)};
    const std::vector<std::string> args = {lease_value(owner_, fence), std::to_string(ttl.count()),
                                           id};
    value reply;
    ec = co_await conn_.eval(refresh_script(), keys, args, reply, diag);
    if (ec) {
        diag.message = "lease refresh for scope '" + scope_id + "': " + diag.message;
        co_return ec;
    }
    if (store_lost_reply(prefix_, id, reply, ec, diag))
        co_return ec;
    if (reply.kind != value_kind::integer)
        co_return unexpected("lease refresh", scope_id, reply, diag);
    if (reply.integer == 0) {
        diag.message = "the lease of scope '" + scope_id + "' is no longer " + args[0] +
                       " (it expired or another instance took it)";
        co_return errc::lease_lost;
    }
    co_return error_code{};
}

asio::awaitable<error_code> lease_store::release(const std::string& scope_id, std::uint64_t fence,
                                                 diagnostics& diag) {
    const auto k = keys_for(prefix_, scope_id);
    const std::vector<std::string> keys = {k.lease, released_key(prefix_, scope_id)};
    const std::vector<std::string> args = {lease_value(owner_, fence), std::to_string(fence)};
    value reply;
    error_code ec = co_await conn_.eval(release_script(), keys, args, reply, diag);
    if (ec) {
        diag.message = "lease release for scope '" + scope_id + "': " + diag.message;
        co_return ec;
    }
    if (reply.kind != value_kind::integer)
        co_return unexpected("lease release", scope_id, reply, diag);
    co_return error_code{};
}

asio::awaitable<error_code> lease_store::heartbeat(std::chrono::milliseconds ttl, std::size_t& live,
                                                   diagnostics& diag) {
    const std::vector<std::string> keys = {instances_key(prefix_)};
    const std::vector<std::string> args = {owner_, std::to_string(ttl.count())};
    value reply;
    error_code ec = co_await conn_.eval(heartbeat_script(), keys, args, reply, diag);
    if (ec) {
        diag.message = "instance heartbeat: " + diag.message;
        co_return ec;
    }
    if (reply.kind != value_kind::integer || reply.integer < 1) {
        diag.message = "instance heartbeat: unexpected script reply " + to_string(reply);
        co_return make_error_code(redis_errc::unexpected_reply);
    }
    live = static_cast<std::size_t>(reply.integer);
    co_return error_code{};
}

asio::awaitable<error_code> lease_store::withdraw(diagnostics& diag) {
    request req({"ZREM", instances_key(prefix_), owner_});
    req.idempotent = true;
    value reply;
    error_code ec = co_await conn_.call(req, reply, diag);
    if (ec)
        diag.message = "instance withdraw: " + diag.message;
    co_return ec;
}

asio::awaitable<error_code> lease_store::record(const std::string& scope_id, std::uint64_t fence,
                                                const manifest_entry& entry, diagnostics& diag) {
    const fence_token token{owner_, fence};
    error_code ec = co_await store_.record(scope_id, entry, token, diag);
    co_return ec;
}

asio::awaitable<error_code> lease_store::record_many(const std::string& scope_id,
                                                     std::uint64_t fence,
                                                     std::span<const manifest_entry> entries,
                                                     diagnostics& diag) {
    const fence_token token{owner_, fence};
    error_code ec = co_await store_.record_many(scope_id, entries, token, diag);
    co_return ec;
}

asio::awaitable<error_code> lease_store::commit(const std::string& scope_id, std::uint64_t fence,
                                                const commit_request& req, diagnostics& diag) {
    const fence_token token{owner_, fence};
    error_code ec = co_await store_.commit(scope_id, req, token, diag);
    co_return ec;
}

}  // namespace penne::redis
