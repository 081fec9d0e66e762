// The journal codec on byte strings: what replay makes of intact, torn and damaged files.
#include "detail/journal.hpp"

#include <penne/memory_state_store.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace penne::file::detail {
namespace {

resume_token tok(std::uint8_t n) {
    std::vector<std::uint8_t> b = {8, 0, 0, 0, 0x0a, 'x', 0, n};
    return resume_token(byte_view(b.data(), b.size()));
}

manifest_entry entry(std::uint64_t seq, std::string key) {
    manifest_entry e;
    e.seq = seq;
    e.key = std::move(key);
    e.db = "db";
    e.coll = "coll";
    e.first = tok(1);
    e.last = tok(2);
    e.count = 3;
    return e;
}

// header + frame 1 (snapshot of the empty state + a record of "a") + frame 2 (record "b")
// + frame 3 (a commit); `frames` gets each frame's offset.
std::string sample(std::vector<std::size_t>& frames) {
    std::string out;
    append_journal_header(out);
    journal_state empty;
    frames.push_back(out.size());
    auto f = begin_frame(out, 1);
    append_snapshot(out, "s", empty);
    append_record(out, entry(1, "a"));
    end_frame(out, f);
    frames.push_back(out.size());
    f = begin_frame(out, 2);
    append_record(out, entry(2, "b"));
    end_frame(out, f);
    frames.push_back(out.size());
    f = begin_frame(out, 3);
    append_commit(out, {.durable_keys = {"a"}, .watermark = tok(9), .retire_keys = {"b"}});
    end_frame(out, f);
    return out;
}

TEST(JournalCodec, Crc32cMatchesTheCastagnoliCheckValue) {
    const std::string check = "123456789";
    EXPECT_EQ(crc32c(0, check.data(), check.size()), 0xe3069283u);
    // Incremental use gives the same result.
    EXPECT_EQ(crc32c(crc32c(0, check.data(), 4), check.data() + 4, 5), 0xe3069283u);
}

TEST(JournalCodec, ReplayAppliesEveryOperationInOrder) {
    std::vector<std::size_t> frames;
    const auto bytes = sample(frames);
    journal_state st;
    auto r = replay_journal(bytes, "s", st);
    ASSERT_EQ(r.result, replay_result::outcome::ok) << r.why;
    EXPECT_EQ(r.last_seq, 3u);
    EXPECT_EQ(r.valid_size, bytes.size());
    EXPECT_FALSE(r.torn_tail);
    auto s = st.to_scope_state();
    ASSERT_EQ(s.entries.size(), 1u);
    EXPECT_EQ(s.entries[0].key, "a");
    EXPECT_TRUE(s.entries[0].durable);
    EXPECT_EQ(s.watermark, tok(9));
}

TEST(JournalCodec, SnapshotRoundTripsAndItsSizeIsExact) {
    journal_state st;
    st.record(entry(5, "e"));
    st.record(entry(2, "b"));
    st.record(entry(2, "c"));
    st.commit({.durable_keys = {"c"}, .watermark = tok(4), .retire_keys = {}});
    std::string out;
    append_journal_header(out);
    auto f = begin_frame(out, 1);
    append_snapshot(out, "scope", st);
    end_frame(out, f);
    EXPECT_EQ(out.size(), journal_header_size + frame_header_size + st.snapshot_bytes("scope"));
    journal_state back;
    auto r = replay_journal(out, "scope", back);
    ASSERT_EQ(r.result, replay_result::outcome::ok) << r.why;
    auto a = st.to_scope_state(), b = back.to_scope_state();
    EXPECT_EQ(a.watermark, b.watermark);
    EXPECT_EQ(a.entries, b.entries);
    ASSERT_EQ(b.entries.size(), 3u);
    EXPECT_EQ(b.entries[0].key, "b");  // seq order, ties in arrival order
    EXPECT_EQ(b.entries[1].key, "c");
    EXPECT_EQ(b.entries[2].key, "e");
}

TEST(JournalCodec, AnotherScopesJournalIsRefused) {
    std::vector<std::size_t> frames;
    journal_state st;
    auto r = replay_journal(sample(frames), "t", st);
    EXPECT_EQ(r.result, replay_result::outcome::corrupt);
    EXPECT_NE(r.why.find("belongs to scope 's'"), std::string::npos) << r.why;
}

TEST(JournalCodec, EveryCutInsideTheLastFrameIsATornTail) {
    std::vector<std::size_t> frames;
    const auto bytes = sample(frames);
    for (std::size_t cut = frames[2]; cut < bytes.size(); ++cut) {
        journal_state st;
        auto r = replay_journal(std::string_view(bytes).substr(0, cut), "s", st);
        ASSERT_EQ(r.result, replay_result::outcome::ok) << cut << ": " << r.why;
        EXPECT_EQ(r.last_seq, 2u);
        EXPECT_EQ(r.valid_size, frames[2]);
        EXPECT_EQ(r.torn_tail, cut > frames[2]);
        EXPECT_EQ(st.size(), 2u);
    }
}

TEST(JournalCodec, EveryFlippedByteBeforeTheLastFrameIsCorruption) {
    std::vector<std::size_t> frames;
    const auto bytes = sample(frames);
    for (std::size_t at = 0; at < frames[2]; ++at) {
        std::string bad = bytes;
        bad[at] = static_cast<char>(bad[at] ^ 0x01);
        journal_state st;
        auto r = replay_journal(bad, "s", st);
        // Bytes 9-11 are the high bytes of the version: a flip there reads as a newer one.
        EXPECT_EQ(r.result, at >= 9 && at < 12 ? replay_result::outcome::newer_version
                                               : replay_result::outcome::corrupt)
            << "byte " << at;
    }
}

TEST(JournalCodec, ACopiedFrameIsCorruptionNotAReplay) {
    std::vector<std::size_t> frames;
    auto bytes = sample(frames);
    const auto end = bytes.size();
    // Frame 2 again where frame 4 should be: intact, but out of sequence.
    bytes += bytes.substr(frames[1], frames[2] - frames[1]);
    journal_state st;
    auto r = replay_journal(bytes, "s", st);
    EXPECT_EQ(r.result, replay_result::outcome::corrupt);
    EXPECT_EQ(r.bad_offset, end);
    EXPECT_NE(r.why.find("carries number 2"), std::string::npos) << r.why;
}

TEST(JournalCodec, StateMatchesTheReferenceTransitions) {
    journal_state st;
    scope_state ref;
    std::vector<manifest_entry> es = {entry(3, "c"), entry(1, "a"), entry(2, "b"), entry(1, "a"),
                                      entry(4, "b")};
    for (auto& e : es) {
        st.record(e);
        apply_record(ref, e);
    }
    commit_request req{.durable_keys = {"a", "zz"}, .watermark = tok(1), .retire_keys = {"c"}};
    st.commit(req);
    apply_commit(ref, req);
    auto got = st.to_scope_state();
    EXPECT_EQ(got.entries, ref.entries);
    EXPECT_EQ(got.watermark, ref.watermark);
}

}  // namespace
}  // namespace penne::file::detail
