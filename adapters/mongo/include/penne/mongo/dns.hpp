#pragma once
// The DNS message codec (RFC 1035, RFC 2782 SRV, RFC 3596 AAAA) that mongodb+srv:// needs:
// build one query, decode the reply. Pure: bytes in, values out, no sockets (the Asio
// driver is dns_client.hpp).
//
// Decoding checks every length against the buffer, follows name compression pointers only
// backwards (a pointer must point before the name that uses it, so a loop is impossible) and
// at most max_pointer_jumps times, and refuses names longer than 255 bytes or labels longer
// than 63. Records of types the codec does not interpret are kept with their type only.
// A reply with the TC (truncated) flag decodes as far as it goes and reports
// header.truncated; the caller then asks again over TCP.
//
// Thread safety: plain values and pure functions; the category is an immutable singleton.

#include <penne/error.hpp>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace penne::mongo::dns {

enum class dns_errc {
    malformed = 1,      // the bytes do not follow the DNS message format
    bad_pointer,        // a compression pointer points forward, into itself or outside
    name_too_long,      // a name over 255 bytes or a label over 63
    invalid_name,       // a name given to encode_query is empty or has an empty label
    not_a_response,     // the QR flag is clear, or the opcode is not QUERY
    id_mismatch,        // the reply answers another query
    question_mismatch,  // the reply's question is not ours
    format_error,       // rcode 1: the server could not read our query
    server_failure,     // rcode 2: the server could not answer now (retryable)
    name_error,         // rcode 3 (NXDOMAIN): the name does not exist
    not_implemented,    // rcode 4: the server does not do this kind of query
    refused,            // rcode 5: the server refuses to answer us
    other_rcode,        // any other non-zero rcode
    no_answer,          // the name exists but has no record of the type asked for
    truncated,          // the reply is truncated even over TCP
    no_server,          // no DNS server address is known
};

const penne::classified_category& error_category() noexcept;

inline error_code make_error_code(dns_errc e) noexcept {
    return {static_cast<int>(e), error_category()};
}

enum class rtype : std::uint16_t { a = 1, cname = 5, txt = 16, aaaa = 28, srv = 33 };
std::string_view to_string(rtype t) noexcept;

inline constexpr std::size_t max_name_length = 255;
inline constexpr std::size_t max_label_length = 63;
inline constexpr int max_pointer_jumps = 64;
// Classic DNS over UDP without EDNS0: a reply never exceeds this; longer answers come back
// truncated.
inline constexpr std::size_t max_udp_message = 512;

struct header {
    std::uint16_t id = 0;
    bool response = false;             // QR
    std::uint8_t opcode = 0;           // 0: QUERY
    bool authoritative = false;        // AA
    bool truncated = false;            // TC
    bool recursion_desired = false;    // RD
    bool recursion_available = false;  // RA
    std::uint8_t rcode = 0;
    std::uint16_t question_count = 0;
    std::uint16_t answer_count = 0;
    std::uint16_t authority_count = 0;
    std::uint16_t additional_count = 0;
};

struct question {
    std::string name;  // dotted, without the trailing dot; "" for the root
    std::uint16_t type = 0;
    std::uint16_t klass = 1;  // IN
};

// One resource record. Only the fields of its type are set.
struct record {
    std::string name;
    std::uint16_t type = 0;
    std::uint16_t klass = 1;
    std::uint32_t ttl = 0;
    std::array<std::uint8_t, 16> address{};  // A: the first 4 bytes; AAAA: all 16
    std::string target;                      // CNAME: the canonical name; SRV: the target host
    std::uint16_t priority = 0;              // SRV
    std::uint16_t weight = 0;                // SRV
    std::uint16_t port = 0;                  // SRV
    std::vector<std::string> strings;        // TXT: its character-strings, in order
};

struct message {
    dns::header header;
    std::vector<question> questions;
    std::vector<record> answers;
    std::vector<record> authorities;
    std::vector<record> additionals;
};

// Appends a standard recursive query for `name` (dotted; a trailing dot is allowed) to
// `out`. Fails with invalid_name or name_too_long; `out` is then unchanged.
error_code encode_query(std::string_view name, rtype type, std::uint16_t id,
                        std::vector<std::uint8_t>& out);

// Decodes a whole message. On failure `out` holds what was decoded before the error.
// A message cut short with the TC flag set decodes the complete records it holds and
// succeeds (header.truncated tells); cut short without TC it is malformed.
error_code decode_message(std::span<const std::uint8_t> bytes, message& out);

// Checks that `m` answers the query (`id`, `name`, `type`) and maps its rcode:
// not_a_response, id_mismatch, question_mismatch, then format_error … other_rcode.
// Names compare case-insensitively (RFC 4343).
error_code check_reply(const message& m, std::uint16_t id, std::string_view name, rtype type);

// The records of `type` that answer `name`, following the CNAME chain the answer section
// holds (at most 8 links). Names compare case-insensitively.
std::vector<const record*> answers_for(const message& m, std::string_view name, rtype type);

// Case-insensitive DNS name equality, ignoring one trailing dot on either side.
bool same_name(std::string_view a, std::string_view b) noexcept;

}  // namespace penne::mongo::dns

template <>
struct boost::system::is_error_code_enum<penne::mongo::dns::dns_errc> : std::true_type {};
