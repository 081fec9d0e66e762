#pragma once
// The MongoDB wire protocol as mongosim speaks it, sans-io: bytes in, a decoded request out;
// a reply document in, bytes out. The connection driver owns the socket and calls these.
//
// Requests: OP_MSG (one body section, any number of document sequences, optional CRC-32C
// trailer) and legacy OP_QUERY on "<db>.$cmd" (drivers' first handshake), either of them
// possibly wrapped in OP_COMPRESSED (snappy, zlib, zstd). Document sequences
// are folded into the command as arrays, so a command handler sees one document whatever
// framing the client chose. Parsing is bounds-checked everywhere: a malformed message yields
// a wire_errc and the caller closes the connection.
//
// Thread safety: free functions without shared state. Lifetimes: decoded requests own their
// bytes; nothing refers back into the input buffer.

#include <mongosim/bson.hpp>
#include <mongosim/compression.hpp>
#include <mongosim/error.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace mongosim {

inline constexpr std::int32_t op_reply = 1;
inline constexpr std::int32_t op_query = 2004;
inline constexpr std::int32_t op_compressed = 2012;
inline constexpr std::int32_t op_msg = 2013;

inline constexpr std::size_t header_size = 16;
inline constexpr std::int32_t max_message_size = 48'000'000;
inline constexpr std::int32_t max_bson_size = 16 * 1024 * 1024;
// A command may exceed maxBsonObjectSize by this much (room for the command's own fields
// around a maximal document), as mongod allows.
inline constexpr std::int32_t command_size_slack = 16 * 1024;

inline constexpr std::uint32_t flag_checksum_present = 1u << 0;
inline constexpr std::uint32_t flag_more_to_come = 1u << 1;
inline constexpr std::uint32_t flag_exhaust_allowed = 1u << 16;

struct message_header {
    std::int32_t length = 0;
    std::int32_t request_id = 0;
    std::int32_t response_to = 0;
    std::int32_t op_code = 0;
};

// Reads the 16-byte header and checks messageLength against [16, max_message_size].
error_code decode_header(std::span<const std::uint8_t> bytes, message_header& out);

struct request {
    message_header header;
    std::uint32_t flags = 0;  // OP_MSG flagBits; 0 for OP_QUERY
    bool legacy = false;      // arrived as OP_QUERY: answer with OP_REPLY
    std::string db;           // "$db" of OP_MSG, or the database of OP_QUERY's namespace
    bson_ptr command;         // body with document sequences appended as arrays
    // Set when the request arrived as OP_COMPRESSED: the reply should use the same compressor.
    std::optional<compressor> compressed_with;

    bool more_to_come() const noexcept { return (flags & flag_more_to_come) != 0; }
    bool exhaust_allowed() const noexcept { return (flags & flag_exhaust_allowed) != 0; }
};

// Decodes a whole message (header included): OP_MSG, OP_QUERY, or OP_COMPRESSED around one of
// them (never around another OP_COMPRESSED).
error_code decode_request(std::span<const std::uint8_t> message, request& out);

// OP_MSG reply with a single body section.
std::vector<std::uint8_t> encode_msg_reply(std::int32_t request_id, std::int32_t response_to,
                                           const bson_t& reply, std::uint32_t flags = 0);
// OP_REPLY carrying one document, for replies to OP_QUERY.
std::vector<std::uint8_t> encode_legacy_reply(std::int32_t request_id, std::int32_t response_to,
                                              const bson_t& reply);

// Wraps an encoded message (header included) in OP_COMPRESSED with the given compressor.
std::vector<std::uint8_t> encode_compressed(std::span<const std::uint8_t> message, compressor c);

// CRC-32C (Castagnoli), the OP_MSG checksum.
std::uint32_t crc32c(std::span<const std::uint8_t> bytes) noexcept;

}  // namespace mongosim
