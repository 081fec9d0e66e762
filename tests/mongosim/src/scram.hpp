#pragma once
// Server side of SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677) as mongod runs them over
// saslStart/saslContinue, sans-io: client messages in, server messages out. Credentials are
// derived once when a user is added and only the derived keys (StoredKey, ServerKey) are kept,
// as mongod stores them; the password itself is not retained.
//
// MongoDB's variants: SCRAM-SHA-1 hashes md5("<user>:mongo:<password>") (hex) instead of the
// password; SCRAM-SHA-256 runs SASLprep (RFC 4013) on the password: non-ASCII spaces map to
// U+0020, "mapped to nothing" characters are removed, the result is normalised to Unicode NFKC
// (through ICU, so "ｐａｓｓ" and "pass" are the same password, as on mongod), then prohibited
// characters are rejected. Not checked: the bidirectional-text rules (RFC 3454 section 6).
//
// Thread safety: none; one conversation per connection. Lifetimes: a conversation copies the
// credential it verifies against, so removing users does not disturb running conversations.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mongosim {

enum class scram_mechanism { sha1, sha256 };

std::string_view mechanism_name(scram_mechanism m) noexcept;
std::optional<scram_mechanism> parse_mechanism(std::string_view name) noexcept;

// Keys derived from a password, per mechanism.
struct scram_credential {
    std::vector<std::uint8_t> salt;
    std::uint32_t iterations = 0;
    std::vector<std::uint8_t> stored_key;
    std::vector<std::uint8_t> server_key;
};

// Derives the credential from the password as the client will see it (the MongoDB digest for
// SHA-1, SASLprep'd for SHA-256). Returns nullopt when SASLprep rejects the password.
std::optional<scram_credential> derive_credential(scram_mechanism m, std::string_view user,
                                                  std::string_view password,
                                                  std::vector<std::uint8_t> salt,
                                                  std::uint32_t iterations);

// The keys for an already-prepared secret (the step shared by both mechanisms; exposed for
// checking against the RFC 5802/7677 examples, which use plain passwords).
scram_credential derive_keys(scram_mechanism m, std::string_view secret,
                             std::vector<std::uint8_t> salt, std::uint32_t iterations);

// The partial SASLprep described above; nullopt for prohibited input.
std::optional<std::string> saslprep(std::string_view s);

// mongod's default iteration counts.
inline constexpr std::uint32_t sha1_iterations = 10000;
inline constexpr std::uint32_t sha256_iterations = 15000;

// Users of one database ("admin" for --auth), with both mechanisms' credentials.
struct user_record {
    std::optional<scram_credential> sha1;
    std::optional<scram_credential> sha256;
};

class user_registry {
public:
    // Derives both credentials with fresh random salts. False if the password is rejected by
    // SASLprep (the SHA-256 credential cannot be made).
    bool add(const std::string& db, const std::string& user, std::string_view password);
    const user_record* find(const std::string& db, const std::string& user) const;
    bool empty() const noexcept { return users_.empty(); }

private:
    std::map<std::pair<std::string, std::string>, user_record> users_;
};

// One SCRAM exchange. step() consumes a client message and produces the server's next message;
// errors are reported by result::failure and end the conversation.
class scram_conversation {
public:
    enum class failure {
        none,
        malformed,       // not a SCRAM message of the expected shape
        unknown_user,    // the user does not exist (reported to clients as auth failure)
        bad_proof,       // wrong password
        nonce_mismatch,  // client-final nonce differs from the combined nonce
        unsupported,     // channel binding requested, or extensions we must reject
    };
    struct result {
        failure error = failure::none;
        std::string message;  // server-first or server-final message
        bool done = false;    // true once the client is authenticated
    };

    // db is the authentication database; lookup resolves the user named in client-first.
    scram_conversation(scram_mechanism m, std::string db) : mech_(m), db_(std::move(db)) {}

    // client-first → server-first. server_nonce: printable, no ','; random in production.
    result start(std::string_view client_first, const user_registry& users,
                 std::string_view server_nonce);
    // Same as start(), with a credential given directly (tests against RFC vectors).
    result start_with(std::string_view client_first, const scram_credential& cred,
                      std::string_view server_nonce);
    // client-final → server-final (done = true on success).
    result finish(std::string_view client_final);

    scram_mechanism mechanism() const noexcept { return mech_; }
    const std::string& db() const noexcept { return db_; }
    const std::string& user() const noexcept { return user_; }
    bool started() const noexcept { return started_; }

private:
    scram_mechanism mech_;
    std::string db_;
    std::string user_;
    std::string gs2_header_;
    std::string client_first_bare_;
    std::string server_first_;
    std::string nonce_;
    scram_credential cred_;
    bool started_ = false;
};

// A random nonce of printable characters (base64 of 24 random bytes).
std::string make_server_nonce();

std::string base64_encode(const std::uint8_t* data, std::size_t n);
std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view s);

}  // namespace mongosim
