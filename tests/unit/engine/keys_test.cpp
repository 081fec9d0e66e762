#include <penne/keys.hpp>

#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>

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

// The placeholder names of issue 7 are aliases of DESIGN §10's short ones.
TEST(keys, long_placeholder_names_are_aliases) {
    const auto in = inputs();
    EXPECT_EQ(render("{prefix}/{database}/{collection}/{yyyy}/{first_cluster_time}-"
                     "{first_token_hash}.{ext}",
                     "cdc", in),
              render("{prefix}/{db}/{coll}/{yyyy}/{first_ts}-{first_token_hash}.{format_ext}",
                     "cdc", in));
    EXPECT_EQ(
        render("{database}={collection}/{first_cluster_time}/{first_token_hash}.{ext}", "", in),
        "shop=orders/1709622489.0000000007/0123456789abcdef.jsonl.zst");
    // Mixed spellings in one template are fine.
    EXPECT_EQ(render("{db}/{collection}/{first_token_hash}.{format_ext}.{ext}", "", in),
              "shop/orders/0123456789abcdef.jsonl.zst.jsonl.zst");
}

struct boundary_case {
    std::uint32_t seconds;
    const char* date_hour;  // yyyy/mm/dd/hh
};

TEST(keys, dates_at_year_and_day_boundaries) {
    const boundary_case cases[] = {
        {946684799, "1999/12/31/23"},   // the last second of a century year
        {946684800, "2000/01/01/00"},   // 2000 is a leap year (divisible by 400)
        {1704067199, "2023/12/31/23"},  // the last second of a year
        {1704067200, "2024/01/01/00"},  // the first second of the next
        {1709164799, "2024/02/28/23"}, {1709164800, "2024/02/29/00"},  // leap day
        {1709251199, "2024/02/29/23"}, {1709251200, "2024/03/01/00"},
        {4294967295, "2106/02/07/06"},  // the largest clusterTime second
    };
    for (const auto& c : cases) {
        auto in = inputs();
        in.first_time = {c.seconds, 1};
        char ts[32];
        std::snprintf(ts, sizeof ts, "%010u.0000000001", c.seconds);
        EXPECT_EQ(render("date_hour", "p", in), std::string("p/shop/orders/") + c.date_hour + "/" +
                                                    ts + "-0123456789abcdef.jsonl.zst")
            << c.seconds;
        const std::string d(c.date_hour);
        EXPECT_EQ(render("hive", "", in),
                  "database=shop/collection=orders/year=" + d.substr(0, 4) +
                      "/month=" + d.substr(5, 2) + "/day=" + d.substr(8, 2) +
                      "/hour=" + d.substr(11, 2) + "/" + ts + "-0123456789abcdef.jsonl.zst")
            << c.seconds;
        EXPECT_EQ(render("date", "", in),
                  "shop/orders/" + d.substr(0, 10) + "/" + ts + "-0123456789abcdef.jsonl.zst")
            << c.seconds;
    }
    // The increment never leaks into the date, and the largest one keeps its ten digits.
    auto in = inputs();
    in.first_time = {1704067199, 4294967295u};
    EXPECT_EQ(render("{yyyy}{mm}{dd}{hh}/{first_cluster_time}-{first_token_hash}", "", in),
              "2023123123/1704067199.4294967295-0123456789abcdef");
}

TEST(keys, names_needing_url_safe_handling) {
    struct name_case {
        const char* name;
        const char* escaped;
    };
    const name_case cases[] = {
        {"orders", "orders"},
        {"system.profile", "system.profile"},  // inner dots are safe
        {"a-b_c.9", "a-b_c.9"},
        {".", "%2E"},  // never a "." or ".." path segment
        {"..", "%2E."},
        {".hidden", "%2Ehidden"},
        {"100%", "100%25"},  // '%' itself, so escaping is reversible
        {"a+b=c&d?e#f", "a%2Bb%3Dc%26d%3Fe%23f"},
        {"x/y\\z", "x%2Fy%5Cz"},
        {"sp ace\ttab", "sp%20ace%09tab"},
        {"caf\xc3\xa9", "caf%C3%A9"},  // UTF-8 bytes one by one
        {"\xe6\x9d\x8e\xf0\x9f\x8d\x9d", "%E6%9D%8E%F0%9F%8D%9D"},
        {"$cmd~!*'()", "%24cmd%7E%21%2A%27%28%29"},
        {"", "_"},
    };
    for (const auto& c : cases) {
        auto in = inputs();
        in.coll = c.name;
        EXPECT_EQ(render("collection", "", in), std::string("shop/") + c.escaped +
                                                    "/1709622489.0000000007-0123456789abcdef."
                                                    "jsonl.zst")
            << c.name;
        in = inputs();
        in.db = c.name;
        EXPECT_EQ(render("hive", "", in).substr(0, 9 + std::strlen(c.escaped) + 1),
                  std::string("database=") + c.escaped + "/")
            << c.name;
    }
    // Every byte value: the rendered name holds only unreserved characters and '%', one
    // segment, never "." or "..".
    for (int b = 0; b < 256; ++b) {
        for (const std::string& name :
             {std::string(1, static_cast<char>(b)), std::string(2, static_cast<char>(b)),
              "a" + std::string(1, static_cast<char>(b))}) {
            auto in = inputs();
            in.coll = name;
            const std::string key = render("{coll}/{first_token_hash}", "", in);
            const std::string seg = key.substr(0, key.find('/'));
            EXPECT_EQ(key, seg + "/0123456789abcdef") << b;
            EXPECT_NE(seg, ".");
            EXPECT_NE(seg, "..");
            for (char ch : seg) {
                const bool ok = std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' ||
                                ch == '_' || ch == '-' || ch == '%';
                EXPECT_TRUE(ok) << "byte " << b << " gave " << seg;
            }
        }
    }
}

TEST(keys, unknown_placeholders_are_named_with_the_allowed_ones) {
    key_template t;
    diagnostics d;
    for (const char* spec : {"{database}/{Collection}/{first_token_hash}",
                             "{db}/{first_token_hash}.{extension}", "{db}/{}/{first_token_hash}",
                             "{db}/{{coll}}/{first_token_hash}", "{ db }/{first_token_hash}"}) {
        d.message.clear();
        EXPECT_EQ(key_template::parse(spec, "p", t, d), errc::invalid_config) << spec;
        EXPECT_NE(d.message.find("unknown placeholder"), std::string::npos) << d.message;
        EXPECT_NE(d.message.find(spec), std::string::npos) << d.message;
        EXPECT_NE(d.message.find("{database}"), std::string::npos) << d.message;
        EXPECT_NE(d.message.find("{first_cluster_time}"), std::string::npos) << d.message;
        EXPECT_NE(d.message.find("{ext}"), std::string::npos) << d.message;
    }
    d.message.clear();
    EXPECT_EQ(key_template::parse("{database}/{Collection}/{first_token_hash}", "", t, d),
              errc::invalid_config);
    EXPECT_NE(d.message.find("{Collection}"), std::string::npos) << d.message;
    // A failed parse leaves the previous template in place.
    ASSERT_FALSE(key_template::parse("flat", "", t, d));
    EXPECT_EQ(key_template::parse("{nope}/{first_token_hash}", "", t, d), errc::invalid_config);
    EXPECT_EQ(t.spec(), "flat");
}

TEST(keys, a_template_without_the_uniqueness_part_is_refused) {
    key_template t;
    diagnostics d;
    for (const char* spec :
         {"{database}/{collection}/{first_cluster_time}.{ext}", "{prefix}/{db}/{coll}.{format_ext}",
          "{db}/{coll}/{yyyy}/{mm}/{dd}/{hh}/{first_ts}", "static-name.jsonl"}) {
        d.message.clear();
        const auto ec = key_template::parse(spec, "", t, d);
        EXPECT_EQ(ec, errc::invalid_config) << spec;
        EXPECT_FALSE(is_retryable(ec));
        if (std::string_view(spec).find('{') != std::string_view::npos) {
            EXPECT_NE(d.message.find("must contain {first_token_hash}"), std::string::npos)
                << d.message;
            EXPECT_NE(d.message.find(spec), std::string::npos) << d.message;
        } else {
            // Without a '{' the spec names a preset.
            EXPECT_NE(d.message.find("unknown key preset"), std::string::npos) << d.message;
        }
    }
}

TEST(keys, dot_segments_are_refused_in_templates_and_prefixes) {
    key_template t;
    diagnostics d;
    EXPECT_EQ(key_template::parse("{db}/../{coll}/{first_token_hash}", "", t, d),
              errc::invalid_config);
    EXPECT_NE(d.message.find("'..' segment"), std::string::npos) << d.message;
    EXPECT_EQ(key_template::parse("./{db}/{first_token_hash}", "", t, d), errc::invalid_config);
    EXPECT_NE(d.message.find("'.' segment"), std::string::npos) << d.message;
    EXPECT_EQ(key_template::parse("date_hour", "cdc/../other", t, d), errc::invalid_config);
    EXPECT_NE(d.message.find("key prefix 'cdc/../other'"), std::string::npos) << d.message;
    // Dots inside a segment are ordinary characters.
    EXPECT_EQ(render("{db}/.../{coll}..{first_token_hash}", "v1.2/x.", inputs()),
              "shop/.../orders..0123456789abcdef");
    EXPECT_EQ(render("{prefix}/{first_token_hash}", "v1.2/x.", inputs()),
              "v1.2/x./0123456789abcdef");
}

TEST(keys, an_empty_database_keeps_the_segment) {
    auto in = inputs();
    in.db = "";
    in.coll = "";
    EXPECT_EQ(render("date_hour", "p", in),
              "p/_/_/2024/03/05/07/1709622489.0000000007-0123456789abcdef.jsonl.zst");
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
