#include <penne/keys.hpp>

#include <gtest/gtest.h>

namespace penne {
namespace {

key_inputs inputs() {
    // 2024-03-05T07:08:09Z
    return {"shop", "orders", {1709622489, 7}, "0123456789abcdef", "jsonl.zst"};
}

std::string render(std::string_view spec, std::string prefix, const key_inputs& in) {
    key_template t;
    diagnostics d;
    EXPECT_FALSE(key_template::parse(spec, std::move(prefix), t, d)) << d.message;
    std::string out;
    t.render(in, out);
    return out;
}

TEST(keys, default_preset_is_date_hour_from_cluster_time) {
    EXPECT_EQ(render("date_hour", "cdc", inputs()),
              "cdc/shop/orders/2024/03/05/07/1709622489.0000000007-0123456789abcdef.jsonl.zst");
}

TEST(keys, presets) {
    EXPECT_EQ(render("hive", "p", inputs()),
              "p/database=shop/collection=orders/year=2024/month=03/day=05/hour=07/"
              "1709622489.0000000007-0123456789abcdef.jsonl.zst");
    EXPECT_EQ(render("date", "p", inputs()),
              "p/shop/orders/2024/03/05/1709622489.0000000007-0123456789abcdef.jsonl.zst");
    EXPECT_EQ(render("collection", "p", inputs()),
              "p/shop/orders/1709622489.0000000007-0123456789abcdef.jsonl.zst");
    EXPECT_EQ(render("flat", "p", inputs()),
              "p/shop_orders_1709622489.0000000007-0123456789abcdef.jsonl.zst");
}

TEST(keys, empty_prefix_leaves_no_empty_segment) {
    EXPECT_EQ(render("collection", "", inputs()),
              "shop/orders/1709622489.0000000007-0123456789abcdef.jsonl.zst");
    EXPECT_EQ(render("collection", "a/b/", inputs()),
              "a/b/shop/orders/1709622489.0000000007-0123456789abcdef.jsonl.zst");
}

TEST(keys, names_are_escaped) {
    auto in = inputs();
    in.coll = "we ird/näme";
    EXPECT_EQ(render("collection", "", in),
              "shop/we%20ird%2Fn%C3%A4me/1709622489.0000000007-0123456789abcdef.jsonl.zst");
}

TEST(keys, custom_template) {
    EXPECT_EQ(render("{db}/{yyyy}{mm}{dd}/{coll}-{first_token_hash}.{format_ext}", "", inputs()),
              "shop/20240305/orders-0123456789abcdef.jsonl.zst");
}

TEST(keys, dates_outside_the_usual_range) {
    auto in = inputs();
    in.first_time = {0, 0};
    EXPECT_EQ(render("date_hour", "", in),
              "shop/orders/1970/01/01/00/0000000000.0000000000-0123456789abcdef.jsonl.zst");
}

TEST(keys, rejects_bad_templates_with_a_useful_message) {
    key_template t;
    diagnostics d;
    EXPECT_EQ(key_template::parse("daily", "", t, d), errc::invalid_config);
    EXPECT_NE(d.message.find("date_hour"), std::string::npos);
    EXPECT_EQ(key_template::parse("{db}/{nope}", "", t, d), errc::invalid_config);
    EXPECT_NE(d.message.find("{nope}"), std::string::npos);
    EXPECT_EQ(key_template::parse("{db}/{coll}.{format_ext}", "", t, d), errc::invalid_config);
    EXPECT_NE(d.message.find("first_token_hash"), std::string::npos);
    EXPECT_EQ(key_template::parse("{db", "", t, d), errc::invalid_config);
}

TEST(keys, short_hash_is_stable) {
    std::vector<std::uint8_t> doc{5, 0, 0, 0, 0};
    resume_token a({doc.data(), doc.size()});
    EXPECT_EQ(a.short_hash().size(), 16u);
    EXPECT_EQ(a.short_hash(), resume_token({doc.data(), doc.size()}).short_hash());
    EXPECT_EQ(a.to_hex(), "0500000000");
    resume_token b;
    EXPECT_TRUE(b.assign_hex(a.to_hex()));
    EXPECT_EQ(a, b);
    EXPECT_FALSE(b.assign_hex("0600000000"));  // length prefix disagrees
    EXPECT_FALSE(b.assign_hex("zz"));
}

}  // namespace
}  // namespace penne
