#include <penne/redis/state_store.hpp>

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

namespace penne::redis {
namespace {

resume_token token(std::uint8_t n) {
    std::vector<std::uint8_t> b = {12, 0, 0, 0, 0x10, 'i', 0, n, 0, 0, 0, 0};
    return resume_token(byte_view(b.data(), b.size()));
}

manifest_entry entry(std::uint64_t seq, std::string key) {
    manifest_entry e;
    e.seq = seq;
    e.key = std::move(key);
    e.db = "shop";
    e.coll = "orders";
    e.first = token(1);
    e.last = token(2);
    e.count = 17;
    return e;
}

TEST(RedisStateKeys, LayoutUnderThePrefixWithOneHashTagPerScope) {
    auto k = keys_for("penne", "shop.orders");
    EXPECT_EQ(k.watermark, "penne:scope:{shop.orders}:watermark");
    EXPECT_EQ(k.manifest, "penne:scope:{shop.orders}:manifest");
    EXPECT_EQ(k.recorded, "penne:scope:{shop.orders}:recorded");
    EXPECT_EQ(k.fence, "penne:fence:{shop.orders}");
    EXPECT_EQ(k.lease, "penne:lease:{shop.orders}");
    EXPECT_EQ(keys_for("prod:eu", "x").manifest, "prod:eu:scope:{x}:manifest");
}

TEST(RedisStateKeys, EscapingIsInjectiveAndRemovesSeparators) {
    EXPECT_EQ(escape_scope_id("a:b{c}d e%"), "a%3Ab%7Bc%7Dd%20e%25");
    EXPECT_EQ(escape_scope_id("Shop-1_x.y"), "Shop-1_x.y");
    EXPECT_EQ(escape_scope_id(std::string("\0\xff", 2)), "%00%FF");
    const std::vector<std::string> ids = {"a:b", "a%3Ab", "a.b", "a_b", "",   "%",
                                          "%25", "{a}",   "ünï", "a/b", "A:B"};
    std::set<std::string> seen;
    for (const auto& id : ids) {
        auto esc = escape_scope_id(id);
        EXPECT_EQ(esc.find_first_of(":{} "), std::string::npos) << esc;
        EXPECT_TRUE(seen.insert(esc).second) << "collision for " << id;
    }
}

TEST(RedisStateEntry, RoundTripsEveryField) {
    auto e = entry(18446744073709551615ull, "shop/orders/2026/a:b,c.jsonl");
    e.db = "d,b:1";
    e.coll = std::string("c\0\n,:", 5);
    e.count = 18446744073709551615ull;
    e.first = resume_token();  // empty survives as empty
    for (bool durable : {false, true}) {
        e.durable = durable;
        std::string stored = std::string(durable ? "1" : "0") + ":42:" + encode_entry(e);
        manifest_entry back;
        std::uint64_t recorded = 0;
        ASSERT_TRUE(decode_stored_entry(stored, back, recorded)) << stored;
        EXPECT_EQ(back, e);
        EXPECT_EQ(recorded, 42u);
    }
}

TEST(RedisStateEntry, MalformedValuesAreRejected) {
    const std::string good = encode_entry(entry(1, "k"));
    EXPECT_TRUE(good.starts_with("1;"));
    manifest_entry out;
    std::uint64_t rec = 0;
    ASSERT_TRUE(decode_stored_entry("0:1:" + good, out, rec));
    const std::vector<std::string> bad = {
        "",
        "2:1:" + good,                                   // durable flag
        "0:x:" + good,                                   // recording number
        "0:1",                                           // no payload
        "0:1:2;" + good.substr(2),                       // unknown payload version
        "0:1:" + good.substr(0, good.size() - 1),        // truncated
        "0:1:" + good + "1:x,",                          // trailing field
        "0:1:1;1:1,1:k,4:shop,6:orders,3:zzz,0:,2:17,",  // bad token hex
        "0:1:1;2:-1,1:k,4:shop,6:orders,0:,0:,2:17,",    // negative seq
        "0:1:1;1:1,9:k,4:shop,6:orders,0:,0:,2:17,",     // length past the end
    };
    for (const auto& s : bad)
        EXPECT_FALSE(decode_stored_entry(s, out, rec)) << s;
}

TEST(RedisStateScripts, RecordArguments) {
    auto k = keys_for("p", "s");
    auto e = entry(5, "obj-5");
    e.durable = true;
    auto call = record_call(k, fence_token{.owner = "host-a", .fence = 12}, e);
    EXPECT_EQ(call.keys, (std::vector<std::string>{k.manifest, k.recorded, k.fence, k.lease}));
    ASSERT_EQ(call.args.size(), 5u);
    EXPECT_EQ(call.args[0], "host-a");
    EXPECT_EQ(call.args[1], "12");
    EXPECT_EQ(call.args[2], "obj-5");
    EXPECT_EQ(call.args[3], "1");
    EXPECT_EQ(call.args[4], encode_entry(e));
    // Unfenced: owner "" and fence 0.
    call = record_call(k, fence_token{}, entry(1, "a"));
    EXPECT_EQ(call.args[0], "");
    EXPECT_EQ(call.args[1], "0");
    EXPECT_EQ(call.args[3], "0");
    // Several entries: one (key, durable, payload) triple each, in the order given.
    std::vector<manifest_entry> group = {entry(1, "a"), e};
    call = record_call(k, fence_token{.owner = "host-a", .fence = 12}, group);
    ASSERT_EQ(call.args.size(), 8u);
    EXPECT_EQ(call.args[2], "a");
    EXPECT_EQ(call.args[3], "0");
    EXPECT_EQ(call.args[4], encode_entry(group[0]));
    EXPECT_EQ(call.args[5], "obj-5");
    EXPECT_EQ(call.args[6], "1");
    EXPECT_EQ(call.args[7], encode_entry(e));
}

TEST(RedisStateScripts, CommitArguments) {
    auto k = keys_for("p", "s");
    commit_request req{.durable_keys = {"a", "b"}, .watermark = token(9), .retire_keys = {"z"}};
    auto call = commit_call(k, fence_token{}, req);
    EXPECT_EQ(call.keys, (std::vector<std::string>{k.manifest, k.watermark, k.fence, k.lease}));
    EXPECT_EQ(call.args,
              (std::vector<std::string>{"", "0", "2", "1", token(9).to_hex(), "a", "b", "z"}));
    call = commit_call(k, fence_token{.owner = "o", .fence = 3},
                       commit_request{.durable_keys = {}, .watermark = {}, .retire_keys = {"x"}});
    EXPECT_EQ(call.args, (std::vector<std::string>{"o", "3", "0", "0", "", "x"}));
}

}  // namespace
}  // namespace penne::redis
