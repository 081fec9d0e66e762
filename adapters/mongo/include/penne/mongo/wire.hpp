#pragma once
// The MongoDB wire protocol, sans I/O: message headers, OP_MSG encode/decode, the legacy
// OP_QUERY/OP_REPLY pair used only for a first handshake with old servers, and a frame
// reader that reassembles messages from bytes arriving in pieces of any size.
//
// Decoding never copies documents: decoded messages are views into the frame. Every
// length is checked against the frame before it is used; malformed input yields an
// error_code of penne::mongo::error_category, never undefined behaviour.
//
// Thread safety: none needed; all types are plain values. Views live as long as the
// frame they were decoded from.

#include <penne/event.hpp>
#include <penne/mongo/error.hpp>

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace penne::mongo::wire {

enum class opcode : std::int32_t {
    reply = 1,
    query = 2004,
    compressed = 2012,
    msg = 2013,
};

inline constexpr std::size_t header_size = 16;
// The server's default maxMessageSizeBytes; the hello reply may announce another value.
inline constexpr std::uint32_t default_max_message_size = 48'000'000;

struct message_header {
    std::int32_t message_length = 0;
    std::int32_t request_id = 0;
    std::int32_t response_to = 0;
    std::int32_t op_code = 0;
};

// Reads the header at the start of `bytes` (which must hold at least header_size bytes).
message_header read_header(byte_view bytes) noexcept;

namespace msg_flag {
inline constexpr std::uint32_t checksum_present = 1u << 0;
inline constexpr std::uint32_t more_to_come = 1u << 1;
inline constexpr std::uint32_t exhaust_allowed = 1u << 16;
}  // namespace msg_flag

// A kind-1 section to encode: an identifier ("documents", "updates", …) and documents.
struct sequence_ref {
    std::string_view identifier;
    std::span<const byte_view> documents;
};

// Appends a complete OP_MSG frame to `out`: the kind-0 `body` then each sequence.
void encode_op_msg(std::vector<std::uint8_t>& out, std::int32_t request_id, std::uint32_t flags,
                   byte_view body, std::span<const sequence_ref> sequences = {});

// A decoded kind-1 section: its identifier and the concatenated documents.
struct sequence_view {
    std::string_view identifier;
    byte_view documents;  // zero or more BSON documents back to back, each validated

    // Calls f(byte_view) for each document.
    template <class F>
    void for_each(F&& f) const {
        std::size_t pos = 0;
        while (pos + 4 <= documents.size()) {
            std::uint32_t len =
                std::uint32_t(documents[pos]) | std::uint32_t(documents[pos + 1]) << 8 |
                std::uint32_t(documents[pos + 2]) << 16 | std::uint32_t(documents[pos + 3]) << 24;
            f(documents.subspan(pos, len));
            pos += len;
        }
    }
};

struct op_msg_view {
    message_header header;
    std::uint32_t flags = 0;
    byte_view body;                        // the single kind-0 document
    std::vector<sequence_view> sequences;  // kind-1 sections (rare in replies)

    bool more_to_come() const noexcept { return (flags & msg_flag::more_to_come) != 0; }
};

// Decodes a complete OP_MSG frame (header included). A CRC-32C trailer announced by
// checksumPresent is skipped, not verified (TCP already protects the bytes).
error_code decode_op_msg(byte_view frame, op_msg_view& out);

// Appends a legacy OP_QUERY frame (used for `isMaster` on admin.$cmd only).
void encode_op_query(std::vector<std::uint8_t>& out, std::int32_t request_id, std::int32_t flags,
                     std::string_view full_collection_name, std::int32_t skip,
                     std::int32_t number_to_return, byte_view query);

struct op_reply_view {
    message_header header;
    std::int32_t response_flags = 0;
    std::int64_t cursor_id = 0;
    std::int32_t starting_from = 0;
    std::int32_t number_returned = 0;
    byte_view first_document;  // the command reply

    bool query_failure() const noexcept { return (response_flags & 2) != 0; }
};

// Decodes a complete OP_REPLY frame that carries at least one document.
error_code decode_op_reply(byte_view frame, op_reply_view& out);

// The fixed part of an OP_COMPRESSED frame; `payload` views the compressed bytes.
struct op_compressed_view {
    message_header header;
    std::int32_t original_opcode = 0;
    std::int32_t uncompressed_size = 0;  // of the carried message without its header
    std::uint8_t compressor = 0;
    byte_view payload;
};
inline constexpr std::size_t compressed_prefix_size = header_size + 4 + 4 + 1;

// Decodes the fields above from a complete OP_COMPRESSED frame. Rejects a nested
// OP_COMPRESSED and a negative size; the caller bounds the size and inflates the payload
// (penne::mongo::codec_set).
error_code decode_op_compressed(byte_view frame, op_compressed_view& out);

// Reassembles frames from a byte stream. The driver asks prepare() for the span to read
// into (never more than the rest of the current frame, so no bytes of the next frame are
// consumed early), then commit()s what it read. feed() is the copying form for tests and
// fuzzers. Once a frame is ready, take() hands its buffer to the caller by swapping
// vectors, so a reply can become an event_batch's storage without a copy and the
// caller's old buffer is reused for the next frame.
class frame_reader {
public:
    explicit frame_reader(std::uint32_t max_message_size = default_max_message_size) noexcept
        : max_(max_message_size) {}

    void set_max_message_size(std::uint32_t n) noexcept { max_ = n; }
    std::uint32_t max_message_size() const noexcept { return max_; }

    std::span<std::uint8_t> prepare();
    // Records `n` bytes written into the last prepare() span. Fails (and stays failed
    // until reset) when the header announces an impossible length.
    error_code commit(std::size_t n);
    // Copies as much of `in` as the current frame needs; returns the count consumed.
    std::size_t feed(byte_view in, error_code& ec);

    bool ready() const noexcept { return have_header_ && filled_ == need_; }
    // Bytes of the current frame read so far (the full frame once ready()).
    byte_view frame() const noexcept { return {buf_.data(), filled_}; }
    // Moves the ready frame into `out` (sized exactly to the frame) and starts a new one.
    void take(std::vector<std::uint8_t>& out);
    void reset() noexcept;

private:
    std::vector<std::uint8_t> buf_;
    std::size_t filled_ = 0;
    std::size_t need_ = header_size;
    bool have_header_ = false;
    error_code failed_;
    std::uint32_t max_;
};

}  // namespace penne::mongo::wire
