#include <penne/mongo/error.hpp>
#include <penne/mongo/saslprep.hpp>
#include <penne/mongo/scram.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/md5.h>
#include <openssl/rand.h>

#include <charconv>
#include <string>

namespace penne::mongo {
namespace {

const EVP_MD* digest(scram_mechanism m) noexcept {
    return m == scram_mechanism::sha256 ? EVP_sha256() : EVP_sha1();
}

std::string hmac(scram_mechanism m, std::string_view key, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(digest(m), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
}

std::string hash(scram_mechanism m, std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), out, &len, digest(m), nullptr);
    return std::string(reinterpret_cast<char*>(out), len);
}

// RFC 5802 "saslname": ',' and '=' are escaped.
std::string escape_username(std::string_view u) {
    std::string out;
    for (char c : u) {
        if (c == '=') {
            out += "=3D";
        } else if (c == ',') {
            out += "=2C";
        } else {
            out += c;
        }
    }
    return out;
}

// Finds "<key>=value" among the comma-separated attributes.
bool attribute(std::string_view msg, char key, std::string_view& value) {
    std::size_t pos = 0;
    while (pos <= msg.size()) {
        auto comma = msg.find(',', pos);
        auto part = msg.substr(pos, comma == std::string_view::npos ? msg.npos : comma - pos);
        if (part.size() >= 2 && part[0] == key && part[1] == '=') {
            value = part.substr(2);
            return true;
        }
        if (comma == std::string_view::npos)
            break;
        pos = comma + 1;
    }
    return false;
}

error_code auth_error(diagnostics& diag, std::string message) {
    diag.message = std::move(message);
    return make_error_code(client_errc::auth_failed);
}

void secure_clear(std::string& s) {
    if (!s.empty())
        OPENSSL_cleanse(s.data(), s.size());
    s.clear();
}

}  // namespace

std::string_view to_string(scram_mechanism m) noexcept {
    return m == scram_mechanism::sha256 ? "SCRAM-SHA-256" : "SCRAM-SHA-1";
}

std::string base64_encode(std::string_view raw) {
    std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(raw.data()),
                            static_cast<int>(raw.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

bool base64_decode(std::string_view text, std::string& raw) {
    raw.clear();
    if (text.size() % 4 != 0)
        return false;
    std::string out(text.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(text.data()),
                            static_cast<int>(text.size()));
    if (n < 0)
        return false;
    // EVP_DecodeBlock counts padding as zero bytes.
    std::size_t pad = 0;
    if (!text.empty() && text.back() == '=')
        ++pad;
    if (text.size() > 1 && text[text.size() - 2] == '=')
        ++pad;
    out.resize(static_cast<std::size_t>(n) - pad);
    raw = std::move(out);
    return true;
}

scram_client::scram_client(scram_mechanism mech, std::string username, std::string password,
                           std::string client_nonce)
    : mech_(mech),
      username_(std::move(username)),
      password_(std::move(password)),
      nonce_(std::move(client_nonce)) {}

scram_client::~scram_client() {
    secure_clear(password_);
    secure_clear(server_signature_);
}

std::string scram_client::make_nonce() {
    unsigned char raw[24];
    RAND_bytes(raw, sizeof raw);
    return base64_encode(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
}

std::string scram_client::client_first() const {
    return "n,,n=" + escape_username(username_) + ",r=" + nonce_;
}

error_code scram_client::on_server_first(std::string_view server_first, std::string& client_final,
                                         diagnostics& diag) {
    std::string_view nonce, salt_b64, iter_text;
    if (!attribute(server_first, 'r', nonce) || !attribute(server_first, 's', salt_b64) ||
        !attribute(server_first, 'i', iter_text)) {
        return auth_error(diag, "SCRAM: malformed server-first message");
    }
    if (nonce.size() <= nonce_.size() || nonce.substr(0, nonce_.size()) != nonce_) {
        return auth_error(diag, "SCRAM: server nonce does not extend the client nonce");
    }
    int iterations = 0;
    auto [p, ec] =
        std::from_chars(iter_text.data(), iter_text.data() + iter_text.size(), iterations);
    if (ec != std::errc{} || p != iter_text.data() + iter_text.size() || iterations < 4096) {
        return auth_error(diag, "SCRAM: iteration count missing or below 4096");
    }
    std::string salt;
    if (!base64_decode(salt_b64, salt) || salt.empty()) {
        return auth_error(diag, "SCRAM: salt is not valid base64");
    }

    std::string secret;
    if (mech_ == scram_mechanism::sha1) {
        std::string input = username_ + ":mongo:" + password_;
        unsigned char md[MD5_DIGEST_LENGTH];
        EVP_Digest(input.data(), input.size(), md, nullptr, EVP_md5(), nullptr);
        secure_clear(input);
        static constexpr char hex[] = "0123456789abcdef";
        for (unsigned char c : md) {
            secret += hex[c >> 4];
            secret += hex[c & 15];
        }
    } else if (auto ec = saslprep(password_, secret)) {
        diag.message =
            "SCRAM-SHA-256: the password is not valid UTF-8 or contains characters that "
            "SASLprep (RFC 4013) prohibits";
        return ec;
    }
    std::string salted(static_cast<std::size_t>(EVP_MD_get_size(digest(mech_))), '\0');
    PKCS5_PBKDF2_HMAC(secret.data(), static_cast<int>(secret.size()),
                      reinterpret_cast<const unsigned char*>(salt.data()),
                      static_cast<int>(salt.size()), iterations, digest(mech_),
                      static_cast<int>(salted.size()),
                      reinterpret_cast<unsigned char*>(salted.data()));
    secure_clear(secret);

    std::string without_proof = "c=biws,r=" + std::string(nonce);
    std::string first_bare = client_first().substr(3);
    auth_message_ = first_bare + "," + std::string(server_first) + "," + without_proof;
    std::string client_key = hmac(mech_, salted, "Client Key");
    std::string stored_key = hash(mech_, client_key);
    std::string signature = hmac(mech_, stored_key, auth_message_);
    std::string proof = client_key;
    for (std::size_t i = 0; i < proof.size(); ++i)
        proof[i] ^= signature[i];
    server_signature_ = hmac(mech_, hmac(mech_, salted, "Server Key"), auth_message_);
    secure_clear(salted);
    secure_clear(client_key);
    client_final = without_proof + ",p=" + base64_encode(proof);
    return {};
}

error_code scram_client::on_server_final(std::string_view server_final, diagnostics& diag) {
    std::string_view value;
    if (attribute(server_final, 'e', value)) {
        return auth_error(diag, "SCRAM: server rejected the proof: " + std::string(value));
    }
    std::string sig;
    if (!attribute(server_final, 'v', value) || !base64_decode(value, sig)) {
        return auth_error(diag, "SCRAM: malformed server-final message");
    }
    if (server_signature_.empty() || sig.size() != server_signature_.size() ||
        CRYPTO_memcmp(sig.data(), server_signature_.data(), sig.size()) != 0) {
        return auth_error(diag, "SCRAM: server signature mismatch (server not trusted)");
    }
    return {};
}

namespace {

document sasl_start(scram_mechanism mech, std::string_view payload, std::string_view db_key,
                    std::string_view db) {
    document d;
    bson_t* b = d.get();
    BSON_APPEND_INT32(b, "saslStart", 1);
    std::string_view m = to_string(mech);
    bson_append_utf8(b, "mechanism", -1, m.data(), static_cast<int>(m.size()));
    bson_append_binary(b, "payload", -1, BSON_SUBTYPE_BINARY,
                       reinterpret_cast<const std::uint8_t*>(payload.data()),
                       static_cast<std::uint32_t>(payload.size()));
    BSON_APPEND_INT32(b, "autoAuthorize", 1);
    bson_t opts;
    BSON_APPEND_DOCUMENT_BEGIN(b, "options", &opts);
    BSON_APPEND_BOOL(&opts, "skipEmptyExchange", true);
    bson_append_document_end(b, &opts);
    bson_append_utf8(b, db_key.data(), static_cast<int>(db_key.size()), db.data(),
                     static_cast<int>(db.size()));
    return d;
}

}  // namespace

document make_sasl_start(scram_mechanism mech, std::string_view payload, std::string_view db) {
    return sasl_start(mech, payload, "$db", db);
}

document make_speculative_sasl_start(scram_mechanism mech, std::string_view payload,
                                     std::string_view db) {
    return sasl_start(mech, payload, "db", db);
}

document make_sasl_continue(std::int32_t conversation_id, std::string_view payload,
                            std::string_view db) {
    document d;
    bson_t* b = d.get();
    BSON_APPEND_INT32(b, "saslContinue", 1);
    BSON_APPEND_INT32(b, "conversationId", conversation_id);
    bson_append_binary(b, "payload", -1, BSON_SUBTYPE_BINARY,
                       reinterpret_cast<const std::uint8_t*>(payload.data()),
                       static_cast<std::uint32_t>(payload.size()));
    bson_append_utf8(b, "$db", -1, db.data(), static_cast<int>(db.size()));
    return d;
}

error_code parse_sasl_reply(byte_view body, sasl_reply& out) {
    out = sasl_reply{};
    bson_iter_t it;
    if (find_field(body, "conversationId", it)) {
        out.conversation_id = static_cast<std::int32_t>(as_integer(it).value_or(0));
    }
    if (find_field(body, "done", it))
        out.done = as_truthy(it).value_or(false);
    if (!find_field(body, "payload", it))
        return make_error_code(client_errc::malformed_reply);
    if (BSON_ITER_HOLDS_BINARY(&it)) {
        bson_subtype_t sub;
        std::uint32_t len = 0;
        const std::uint8_t* data = nullptr;
        bson_iter_binary(&it, &sub, &len, &data);
        out.payload = std::string_view(reinterpret_cast<const char*>(data), len);
    } else if (auto s = as_string(it)) {
        out.payload = *s;
    } else {
        return make_error_code(client_errc::malformed_reply);
    }
    return {};
}

}  // namespace penne::mongo
