#pragma once
// Error codes of mongosim's wire layer: why a connection was closed instead of answered.
// MongoDB command errors (ok: 0 replies) are not error_codes; they travel to the client as
// BSON. These codes are for bytes that cannot be a request at all, and every one of them
// ends the connection, so none is retryable on the same connection.
//
// Thread safety: the category is a stateless singleton, safe from any thread.

#include <penne/error.hpp>

namespace mongosim {

using penne::error_code;

enum class wire_errc {
    truncated = 1,       // fewer bytes than a field, section or document claims
    bad_length,          // messageLength below the header size or above maxMessageSizeBytes
    unsupported_opcode,  // not OP_MSG, and not OP_QUERY on <db>.$cmd
    bad_flags,           // an OP_MSG flag bit we must understand but do not
    bad_section,         // unknown section kind, wrong body count, sequence overrun
    bad_bson,            // a document that is not well-formed BSON or is too large
    bad_checksum,        // the CRC-32C trailer does not match the message
    bad_query,           // OP_QUERY addressed to something other than a command namespace
    bad_compression,     // OP_COMPRESSED with an unknown compressor, or bytes that do not
                         // decompress to exactly uncompressedSize
};

const penne::classified_category& wire_category() noexcept;

inline error_code make_error_code(wire_errc e) noexcept {
    return {static_cast<int>(e), wire_category()};
}

}  // namespace mongosim

template <>
struct boost::system::is_error_code_enum<mongosim::wire_errc> : std::true_type {};
