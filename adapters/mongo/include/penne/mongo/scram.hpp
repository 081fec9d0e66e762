#pragma once
// SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802 / RFC 7677) as MongoDB uses them, sans I/O:
// the client builds its messages and checks the server's, the connection carries them in
// saslStart / saslContinue commands (also built here).
//
// MongoDB specifics: SCRAM-SHA-1 hashes the password as hex(MD5(user ":mongo:" password))
// before PBKDF2 (no SASLprep, as MongoDB specifies); SCRAM-SHA-256 uses the password after
// SASLprep (saslprep.hpp says which parts of RFC 4013 are applied).
//
// Thread safety: one conversation per object. The object holds the password and the
// derived keys; they never appear in diagnostics.

#include <penne/error.hpp>
#include <penne/event.hpp>
#include <penne/mongo/bson.hpp>
#include <penne/mongo/error.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace penne::mongo {

enum class scram_mechanism { sha1, sha256 };
std::string_view to_string(scram_mechanism m) noexcept;

class scram_client {
public:
    scram_client(scram_mechanism mech, std::string username, std::string password,
                 std::string client_nonce);
    ~scram_client();

    // A fresh random nonce (24 bytes from the OpenSSL CSPRNG, base64).
    static std::string make_nonce();

    // "n,,n=<user>,r=<nonce>"
    std::string client_first() const;
    // Checks the server-first message and computes the client-final message.
    error_code on_server_first(std::string_view server_first, std::string& client_final,
                               diagnostics& diag);
    // Checks the server's signature (mutual authentication).
    error_code on_server_final(std::string_view server_final, diagnostics& diag);

private:
    scram_mechanism mech_;
    std::string username_;
    std::string password_;
    std::string nonce_;
    std::string auth_message_;
    std::string server_signature_;  // raw bytes
};

document make_sasl_start(scram_mechanism mech, std::string_view payload, std::string_view db);
// The same saslStart for hello's speculativeAuthenticate, which names the database in `db`
// rather than `$db`; the server answers it with a saslStart reply inside the hello reply.
document make_speculative_sasl_start(scram_mechanism mech, std::string_view payload,
                                     std::string_view db);
document make_sasl_continue(std::int32_t conversation_id, std::string_view payload,
                            std::string_view db);

struct sasl_reply {
    std::int32_t conversation_id = 0;
    bool done = false;
    std::string_view payload;  // view into the reply
};
error_code parse_sasl_reply(byte_view body, sasl_reply& out);

std::string base64_encode(std::string_view raw);
// False when `text` is not valid padded base64.
bool base64_decode(std::string_view text, std::string& raw);

}  // namespace penne::mongo
