// Whole-object compression: round trips, determinism, concatenated streams, the pool.
#include <penne/formats/compress.hpp>
#include <penne/formats/ejson.hpp>
#include <penne/formats/error.hpp>

#include "bson_corpus.hpp"

#include <gtest/gtest.h>
#include <zstd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace penne::formats {
namespace {

// JSON lines of realistic change events: what batches actually compress.
std::string sample_lines(std::size_t min_bytes, std::uint64_t seed = 1) {
    testing::corpus_generator gen(seed);
    std::string out;
    while (out.size() < min_bytes) {
        auto b = gen.change_event();
        EXPECT_TRUE(write_ejson(bson_get_data(b.get()), b->len, ejson_mode::relaxed, out));
        out.push_back('\n');
    }
    return out;
}

std::string round_trip(codec c, int level, const std::string& in) {
    compressor comp(compression_options{c, level});
    std::string packed, unpacked;
    EXPECT_FALSE(comp.compress(in, packed));
    diagnostics diag;
    EXPECT_FALSE(decompress(c, packed, unpacked, diag)) << diag.message;
    return unpacked;
}

TEST(Compress, Names) {
    EXPECT_EQ(file_extension(codec::gzip), ".gz");
    EXPECT_EQ(file_extension(codec::zstd), ".zst");
    EXPECT_EQ(file_extension(codec::none), "");
    EXPECT_EQ(content_encoding(codec::gzip), "gzip");
    EXPECT_EQ(content_encoding(codec::zstd), "zstd");
    EXPECT_EQ(content_encoding(codec::none), "");
    EXPECT_EQ(default_level(codec::gzip), 6);
    EXPECT_EQ(default_level(codec::zstd), 3);
}

TEST(Compress, ParseCodec) {
    diagnostics diag;
    codec c = codec::none;
    EXPECT_FALSE(parse_codec("zstd", c, diag));
    EXPECT_EQ(c, codec::zstd);
    EXPECT_FALSE(parse_codec("gzip", c, diag));
    EXPECT_EQ(c, codec::gzip);
    EXPECT_FALSE(parse_codec("none", c, diag));
    EXPECT_EQ(c, codec::none);

    error_code ec = parse_codec("lz4", c, diag);
    EXPECT_EQ(ec, errc::unknown_codec);
    EXPECT_TRUE(is_fatal(ec));
    EXPECT_NE(diag.message.find("\"lz4\""), std::string::npos) << diag.message;
    EXPECT_NE(diag.message.find("none, gzip, zstd"), std::string::npos) << diag.message;
    EXPECT_EQ(c, codec::none) << "a failed parse leaves the output alone";
}

TEST(Compress, ParseLevels) {
    diagnostics diag;
    compression_options o;
    EXPECT_FALSE(parse_compression("gzip", 0, o, diag));
    EXPECT_EQ(o.level, 6);
    EXPECT_FALSE(parse_compression("zstd", 19, o, diag));
    EXPECT_EQ(o.level, 19);
    EXPECT_EQ(parse_compression("zstd", 20, o, diag), errc::invalid_level);
    EXPECT_NE(diag.message.find("1-19"), std::string::npos) << diag.message;
    EXPECT_EQ(parse_compression("gzip", 10, o, diag), errc::invalid_level);
    EXPECT_NE(diag.message.find("1-9"), std::string::npos) << diag.message;
    EXPECT_EQ(parse_compression("gzip", -1, o, diag), errc::invalid_level);
    EXPECT_EQ(parse_compression("none", 3, o, diag), errc::invalid_level);
    EXPECT_THROW(compressor(compression_options{codec::zstd, 42}), std::invalid_argument);
}

TEST(Compress, EveryCodecAndLevelRoundTrips) {
    const std::string in = sample_lines(200 * 1024);
    EXPECT_EQ(round_trip(codec::none, 0, in), in);
    for (int level = 1; level <= 9; ++level) {
        EXPECT_EQ(round_trip(codec::gzip, level, in), in) << "gzip " << level;
    }
    for (int level = 1; level <= 19; ++level) {
        EXPECT_EQ(round_trip(codec::zstd, level, in), in) << "zstd " << level;
    }
}

TEST(Compress, EmptyInput) {
    for (codec c : {codec::none, codec::gzip, codec::zstd}) {
        compressor comp(compression_options{c, 0});
        std::string packed = "stale", unpacked = "stale";
        ASSERT_FALSE(comp.compress("", packed));
        if (c != codec::none) {
            EXPECT_FALSE(packed.empty()) << "a valid empty member/frame";
        }
        diagnostics diag;
        ASSERT_FALSE(decompress(c, packed, unpacked, diag)) << diag.message;
        EXPECT_TRUE(unpacked.empty());
    }
}

TEST(Compress, LargeInputAndContextReuse) {
    const std::string big = sample_lines(6 * 1024 * 1024, 2);
    const std::string small = sample_lines(1000, 3);
    for (codec c : {codec::gzip, codec::zstd}) {
        compressor comp(compression_options{c, 0});
        std::string packed, unpacked;
        diagnostics diag;
        // The same context, big then small then big: no state leaks between objects.
        for (const std::string* in : {&big, &small, &big}) {
            ASSERT_FALSE(comp.compress(*in, packed));
            if (in == &big) {
                EXPECT_LT(packed.size(), in->size() / 3);
            }
            ASSERT_FALSE(decompress(c, packed, unpacked, diag)) << diag.message;
            EXPECT_TRUE(unpacked == *in);
        }
    }
}

TEST(Compress, DeterministicAcrossContexts) {
    const std::string in = sample_lines(300 * 1024, 4);
    for (codec c : {codec::gzip, codec::zstd}) {
        compressor a(compression_options{c, 0}), b(compression_options{c, 0});
        std::string pa, pb, pa2;
        ASSERT_FALSE(a.compress(sample_lines(5000, 9), pa2));  // dirty a first
        ASSERT_FALSE(a.compress(in, pa));
        ASSERT_FALSE(b.compress(in, pb));
        EXPECT_TRUE(pa == pb) << codec_name(c);
    }
}

TEST(Compress, GzipHeaderHasNoTimestampOrName) {
    compressor comp(compression_options{codec::gzip, 0});
    std::string packed;
    ASSERT_FALSE(comp.compress("hello", packed));
    ASSERT_GE(packed.size(), 10u);
    EXPECT_EQ(static_cast<unsigned char>(packed[0]), 0x1f);
    EXPECT_EQ(static_cast<unsigned char>(packed[1]), 0x8b);
    EXPECT_EQ(packed[2], 8);                               // deflate
    EXPECT_EQ(packed[3], 0);                               // no FNAME/FCOMMENT/FEXTRA
    EXPECT_EQ(packed.substr(4, 4), std::string(4, '\0'));  // MTIME 0
}

TEST(Compress, ZstdFrameIsSingleAndChecksummed) {
    compressor comp(compression_options{codec::zstd, 0});
    const std::string in = sample_lines(10000, 5);
    std::string packed;
    ASSERT_FALSE(comp.compress(in, packed));
    EXPECT_EQ(ZSTD_findFrameCompressedSize(packed.data(), packed.size()), packed.size());
    EXPECT_EQ(ZSTD_getFrameContentSize(packed.data(), packed.size()), in.size());
    // Frame header descriptor, the byte after the magic number: bit 2 is the checksum flag.
    EXPECT_TRUE(static_cast<unsigned char>(packed[4]) & 0x04);
}

TEST(Compress, ConcatenatedFramesAndMembers) {
    const std::string a = sample_lines(5000, 6), b = sample_lines(7000, 7);
    for (codec c : {codec::gzip, codec::zstd}) {
        compressor comp(compression_options{c, 0});
        std::string pa, pb, out;
        ASSERT_FALSE(comp.compress(a, pa));
        ASSERT_FALSE(comp.compress(b, pb));
        diagnostics diag;
        ASSERT_FALSE(decompress(c, pa + pb, out, diag)) << diag.message;
        EXPECT_TRUE(out == a + b) << codec_name(c);
    }
}

TEST(Compress, CorruptAndTruncatedInputIsReported) {
    const std::string in = sample_lines(20000, 8);
    for (codec c : {codec::gzip, codec::zstd}) {
        compressor comp(compression_options{c, 0});
        std::string packed, out;
        ASSERT_FALSE(comp.compress(in, packed));
        diagnostics diag;
        for (std::size_t cut : {std::size_t(1), packed.size() / 2, packed.size() - 1}) {
            error_code ec = decompress(c, std::string_view(packed).substr(0, cut), out, diag);
            EXPECT_TRUE(ec == errc::truncated_input || ec == errc::corrupt_input)
                << codec_name(c) << " cut " << cut << ": " << ec.message();
            EXPECT_TRUE(is_fatal(ec));
        }
        std::string flipped = packed;
        flipped[flipped.size() / 2] ^= 0x5A;
        EXPECT_TRUE(decompress(c, flipped, out, diag)) << codec_name(c);
        EXPECT_EQ(decompress(c, "definitely not compressed", out, diag), errc::corrupt_input);
        EXPECT_EQ(decompress(c, packed + "junk", out, diag), errc::corrupt_input);
        EXPECT_EQ(decompress(c, "", out, diag), errc::truncated_input);
        EXPECT_EQ(decompress(c, packed, out, diag, 1000), errc::output_limit);
    }
}

// Interoperability with the command-line tools users will run on downloaded objects.
TEST(Compress, CommandLineToolsReadOurOutput) {
    const std::string in = sample_lines(50000, 10);
    struct tool {
        codec c;
        const char* cmd;
    };
    for (const tool& t : {tool{codec::gzip, "gzip -dc"}, tool{codec::zstd, "zstd -dcq"}}) {
        const std::string probe = std::string("command -v ") +
                                  (t.c == codec::gzip ? "gzip" : "zstd") + " >/dev/null 2>&1";
        if (std::system(probe.c_str()) != 0)
            continue;
        compressor comp(compression_options{t.c, 0});
        std::string packed;
        ASSERT_FALSE(comp.compress(in, packed));
        char path[] = "/tmp/penne-compress-XXXXXX";
        int fd = mkstemp(path);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(write(fd, packed.data(), packed.size()), static_cast<ssize_t>(packed.size()));
        close(fd);
        std::string cmd = std::string(t.cmd) + " < " + path;
        FILE* p = popen(cmd.c_str(), "r");
        ASSERT_TRUE(p);
        std::string got;
        char buf[65536];
        std::size_t n;
        while ((n = fread(buf, 1, sizeof buf, p)) > 0)
            got.append(buf, n);
        EXPECT_EQ(pclose(p), 0);
        unlink(path);
        EXPECT_TRUE(got == in) << t.cmd;
    }
}

TEST(Compress, PoolLendsAndKeepsAtMostMaxIdle) {
    compressor_pool pool(compression_options{codec::zstd, 0}, 2);
    EXPECT_EQ(pool.idle(), 0u) << "an unused pool owns no context";
    {
        auto a = pool.acquire();
        auto b = pool.acquire();
        auto c = pool.acquire();
        EXPECT_EQ(pool.idle(), 0u);
        EXPECT_EQ(a->options().level, 3);
    }
    EXPECT_EQ(pool.idle(), 2u) << "the surplus context is freed";
    compressor* first;
    {
        auto a = pool.acquire();
        first = &*a;
        EXPECT_EQ(pool.idle(), 1u);
    }
    {
        auto again = pool.acquire();
        EXPECT_EQ(&*again, first) << "contexts are reused";
        auto moved = std::move(again);
        EXPECT_EQ(&*moved, first);
    }
    EXPECT_EQ(pool.idle(), 2u);
}

TEST(Compress, PoolIsSafeAcrossThreads) {
    compressor_pool pool(compression_options{codec::gzip, 1}, 3);
    std::vector<std::string> inputs;
    for (int i = 0; i < 8; ++i)
        inputs.push_back(sample_lines(20000 + 1000 * i, 100 + i));
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            std::string packed, out;
            diagnostics diag;
            for (int i = 0; i < 40; ++i) {
                const std::string& in = inputs[(t + i) % inputs.size()];
                if (pool.compress(in, packed) || decompress(codec::gzip, packed, out, diag) ||
                    out != in)
                    ++failures;
            }
        });
    }
    for (auto& th : threads)
        th.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_LE(pool.idle(), 3u);
}

}  // namespace
}  // namespace penne::formats
