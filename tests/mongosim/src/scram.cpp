#include "scram.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <cstring>
#include <vector>

namespace mongosim {
namespace {

using bytes = std::vector<std::uint8_t>;

const EVP_MD* digest_of(scram_mechanism m) {
    return m == scram_mechanism::sha1 ? EVP_sha1() : EVP_sha256();
}

bytes hmac(scram_mechanism m, const bytes& key, std::string_view data) {
    bytes out(EVP_MAX_MD_SIZE);
    unsigned len = 0;
    HMAC(digest_of(m), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(), &len);
    out.resize(len);
    return out;
}

bytes hash(const EVP_MD* md, const std::uint8_t* data, std::size_t n) {
    bytes out(EVP_MAX_MD_SIZE);
    unsigned len = 0;
    EVP_Digest(data, n, out.data(), &len, md, nullptr);
    out.resize(len);
    return out;
}

std::string hex(const bytes& b) {
    static const char digits[] = "0123456789abcdef";
    std::string s;
    for (auto c : b) {
        s.push_back(digits[c >> 4]);
        s.push_back(digits[c & 15]);
    }
    return s;
}

// Splits "a=1,b=2" into attributes; values may contain '=' but not ','.
bool split_attributes(std::string_view s, std::vector<std::pair<char, std::string_view>>& out) {
    while (!s.empty()) {
        auto comma = s.find(',');
        std::string_view part = s.substr(0, comma);
        if (part.size() < 2 || part[1] != '=')
            return false;
        out.emplace_back(part[0], part.substr(2));
        if (comma == std::string_view::npos)
            break;
        s.remove_prefix(comma + 1);
        if (s.empty())
            return false;  // trailing comma
    }
    return true;
}

// saslname: '=2C' is ',', '=3D' is '='; any other '=' is malformed.
std::optional<std::string> unescape_name(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '=') {
            out.push_back(s[i]);
            continue;
        }
        if (s.substr(i, 3) == "=2C")
            out.push_back(',');
        else if (s.substr(i, 3) == "=3D")
            out.push_back('=');
        else
            return std::nullopt;
        i += 2;
    }
    return out;
}

// Decodes one UTF-8 code point; false on invalid or overlong encodings.
bool next_code_point(std::string_view s, std::size_t& i, char32_t& cp) {
    auto b = static_cast<unsigned char>(s[i]);
    int extra;
    if (b < 0x80) {
        cp = b;
        extra = 0;
    } else if ((b & 0xE0) == 0xC0) {
        cp = b & 0x1F;
        extra = 1;
    } else if ((b & 0xF0) == 0xE0) {
        cp = b & 0x0F;
        extra = 2;
    } else if ((b & 0xF8) == 0xF0) {
        cp = b & 0x07;
        extra = 3;
    } else {
        return false;
    }
    if (i + static_cast<std::size_t>(extra) >= s.size())
        return false;
    for (int k = 1; k <= extra; ++k) {
        auto c = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
        if ((c & 0xC0) != 0x80)
            return false;
        cp = (cp << 6) | (c & 0x3F);
    }
    static constexpr char32_t min_for[] = {0, 0x80, 0x800, 0x10000};
    if (cp < min_for[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return false;
    i += static_cast<std::size_t>(extra) + 1;
    return true;
}

void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

bool non_ascii_space(char32_t c) {
    return c == 0x00A0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200B) || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

bool mapped_to_nothing(char32_t c) {
    return c == 0x00AD || c == 0x034F || c == 0x1806 || (c >= 0x180B && c <= 0x180D) ||
           (c >= 0x200B && c <= 0x200D) || c == 0x2060 || (c >= 0xFE00 && c <= 0xFE0F) ||
           c == 0xFEFF;
}

bool prohibited(char32_t c) {
    return c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0x9F) ||             // controls
           (c >= 0xE000 && c <= 0xF8FF) || c >= 0xF0000 ||                  // private use
           (c & 0xFFFE) == 0xFFFE || (c >= 0xFDD0 && c <= 0xFDEF) ||        // non-characters
           (c >= 0xFFF9 && c <= 0xFFFD) || (c >= 0x2FF0 && c <= 0x2FFB) ||  // not plain text
           c == 0x0340 || c == 0x0341 || c == 0x200E || c == 0x200F ||      // display props
           (c >= 0x202A && c <= 0x202E) || (c >= 0x206A && c <= 0x206F) || c == 0xE0001 ||
           (c >= 0xE0020 && c <= 0xE007F);  // tagging
}

// Unicode NFKC of UTF-8 text (ICU); nullopt when ICU refuses it.
std::optional<std::string> nfkc(const std::string& in) {
    UErrorCode status = U_ZERO_ERROR;
    const UNormalizer2* norm = unorm2_getNFKCInstance(&status);
    if (U_FAILURE(status))
        return std::nullopt;
    std::vector<UChar> utf16(in.size() + 1);
    std::int32_t len16 = 0;
    u_strFromUTF8(utf16.data(), static_cast<std::int32_t>(utf16.size()), &len16, in.data(),
                  static_cast<std::int32_t>(in.size()), &status);
    if (U_FAILURE(status))
        return std::nullopt;
    // NFKC may expand a code unit into up to 18 (U+FDFA); ask again when the guess is short.
    std::vector<UChar> normalised(static_cast<std::size_t>(len16) * 4 + 16);
    std::int32_t n = unorm2_normalize(norm, utf16.data(), len16, normalised.data(),
                                      static_cast<std::int32_t>(normalised.size()), &status);
    if (status == U_BUFFER_OVERFLOW_ERROR) {
        status = U_ZERO_ERROR;
        normalised.resize(static_cast<std::size_t>(n));
        n = unorm2_normalize(norm, utf16.data(), len16, normalised.data(), n, &status);
    }
    if (U_FAILURE(status))
        return std::nullopt;
    std::string out(static_cast<std::size_t>(n) * 3, '\0');
    std::int32_t len8 = 0;
    u_strToUTF8(out.data(), static_cast<std::int32_t>(out.size()), &len8, normalised.data(), n,
                &status);
    if (U_FAILURE(status))
        return std::nullopt;
    out.resize(static_cast<std::size_t>(len8));
    return out;
}

}  // namespace

std::string_view mechanism_name(scram_mechanism m) noexcept {
    return m == scram_mechanism::sha1 ? "SCRAM-SHA-1" : "SCRAM-SHA-256";
}

std::optional<scram_mechanism> parse_mechanism(std::string_view name) noexcept {
    if (name == "SCRAM-SHA-1")
        return scram_mechanism::sha1;
    if (name == "SCRAM-SHA-256")
        return scram_mechanism::sha256;
    return std::nullopt;
}

std::optional<std::string> saslprep(std::string_view s) {
    // RFC 4013: map, normalise (NFKC), then prohibit.
    std::string mapped;
    for (std::size_t i = 0; i < s.size();) {
        char32_t cp;
        if (!next_code_point(s, i, cp))
            return std::nullopt;
        if (mapped_to_nothing(cp))
            continue;
        if (non_ascii_space(cp))
            cp = U' ';
        append_utf8(mapped, cp);
    }
    auto normalised = nfkc(mapped);
    if (!normalised)
        return std::nullopt;
    for (std::size_t i = 0; i < normalised->size();) {
        char32_t cp;
        if (!next_code_point(*normalised, i, cp) || prohibited(cp))
            return std::nullopt;
    }
    return normalised;
}

std::optional<scram_credential> derive_credential(scram_mechanism m, std::string_view user,
                                                  std::string_view password,
                                                  std::vector<std::uint8_t> salt,
                                                  std::uint32_t iterations) {
    std::string secret;
    if (m == scram_mechanism::sha1) {
        std::string in = std::string(user) + ":mongo:" + std::string(password);
        secret = hex(hash(EVP_md5(), reinterpret_cast<const std::uint8_t*>(in.data()), in.size()));
    } else {
        auto prepared = saslprep(password);
        if (!prepared)
            return std::nullopt;
        secret = std::move(*prepared);
    }
    scram_credential c = derive_keys(m, secret, std::move(salt), iterations);
    OPENSSL_cleanse(secret.data(), secret.size());
    return c;
}

scram_credential derive_keys(scram_mechanism m, std::string_view secret,
                             std::vector<std::uint8_t> salt, std::uint32_t iterations) {
    const EVP_MD* md = digest_of(m);
    bytes salted(static_cast<std::size_t>(EVP_MD_get_size(md)));
    PKCS5_PBKDF2_HMAC(secret.data(), static_cast<int>(secret.size()), salt.data(),
                      static_cast<int>(salt.size()), static_cast<int>(iterations), md,
                      static_cast<int>(salted.size()), salted.data());
    scram_credential c;
    bytes client_key = hmac(m, salted, "Client Key");
    c.stored_key = hash(md, client_key.data(), client_key.size());
    c.server_key = hmac(m, salted, "Server Key");
    OPENSSL_cleanse(salted.data(), salted.size());
    c.salt = std::move(salt);
    c.iterations = iterations;
    return c;
}

bool user_registry::add(const std::string& db, const std::string& user, std::string_view password) {
    auto random_salt = [](std::size_t n) {
        bytes s(n);
        RAND_bytes(s.data(), static_cast<int>(n));
        return s;
    };
    user_record rec;
    rec.sha256 = derive_credential(scram_mechanism::sha256, user, password, random_salt(28),
                                   sha256_iterations);
    if (!rec.sha256)
        return false;
    rec.sha1 =
        derive_credential(scram_mechanism::sha1, user, password, random_salt(16), sha1_iterations);
    users_[{db, user}] = std::move(rec);
    return true;
}

const user_record* user_registry::find(const std::string& db, const std::string& user) const {
    auto it = users_.find({db, user});
    return it == users_.end() ? nullptr : &it->second;
}

scram_conversation::result scram_conversation::start(std::string_view client_first,
                                                     const user_registry& users,
                                                     std::string_view server_nonce) {
    // Parse first to learn the user; start_with() parses again, which is cheap and keeps one
    // code path for the checks.
    auto comma1 = client_first.find(',');
    auto comma2 = comma1 == std::string_view::npos ? comma1 : client_first.find(',', comma1 + 1);
    if (comma2 == std::string_view::npos)
        return {failure::malformed, {}, false};
    std::vector<std::pair<char, std::string_view>> attrs;
    if (!split_attributes(client_first.substr(comma2 + 1), attrs) || attrs.empty() ||
        attrs[0].first != 'n')
        return {failure::malformed, {}, false};
    auto name = unescape_name(attrs[0].second);
    if (!name)
        return {failure::malformed, {}, false};
    const user_record* rec = users.find(db_, *name);
    const auto& cred = rec == nullptr                   ? std::nullopt
                       : mech_ == scram_mechanism::sha1 ? rec->sha1
                                                        : rec->sha256;
    if (!cred) {
        user_ = *name;
        return {failure::unknown_user, {}, false};
    }
    return start_with(client_first, *cred, server_nonce);
}

scram_conversation::result scram_conversation::start_with(std::string_view client_first,
                                                          const scram_credential& cred,
                                                          std::string_view server_nonce) {
    if (started_)
        return {failure::malformed, {}, false};
    // gs2-header: cbind-flag "," [authzid] ","
    auto comma1 = client_first.find(',');
    if (comma1 == std::string_view::npos)
        return {failure::malformed, {}, false};
    std::string_view flag = client_first.substr(0, comma1);
    if (flag.starts_with("p="))
        return {failure::unsupported, {}, false};  // we offer no channel binding
    if (flag != "n" && flag != "y")
        return {failure::malformed, {}, false};
    auto comma2 = client_first.find(',', comma1 + 1);
    if (comma2 == std::string_view::npos)
        return {failure::malformed, {}, false};
    std::string_view authzid = client_first.substr(comma1 + 1, comma2 - comma1 - 1);
    if (!authzid.empty() && !authzid.starts_with("a="))
        return {failure::malformed, {}, false};
    gs2_header_ = std::string(client_first.substr(0, comma2 + 1));
    std::string_view bare = client_first.substr(comma2 + 1);

    std::vector<std::pair<char, std::string_view>> attrs;
    if (!split_attributes(bare, attrs) || attrs.size() < 2)
        return {failure::malformed, {}, false};
    if (attrs[0].first == 'm')
        return {failure::unsupported, {}, false};  // mandatory extension we do not know
    if (attrs[0].first != 'n' || attrs[1].first != 'r' || attrs[1].second.empty())
        return {failure::malformed, {}, false};
    auto name = unescape_name(attrs[0].second);
    if (!name || name->empty())
        return {failure::malformed, {}, false};

    user_ = std::move(*name);
    client_first_bare_ = std::string(bare);
    nonce_ = std::string(attrs[1].second) + std::string(server_nonce);
    cred_ = cred;
    server_first_ = "r=" + nonce_ + ",s=" + base64_encode(cred.salt.data(), cred.salt.size()) +
                    ",i=" + std::to_string(cred.iterations);
    started_ = true;
    return {failure::none, server_first_, false};
}

scram_conversation::result scram_conversation::finish(std::string_view client_final) {
    if (!started_)
        return {failure::malformed, {}, false};
    started_ = false;  // one attempt per conversation
    auto proof_at = client_final.rfind(",p=");
    if (proof_at == std::string_view::npos)
        return {failure::malformed, {}, false};
    std::string_view without_proof = client_final.substr(0, proof_at);
    std::vector<std::pair<char, std::string_view>> attrs;
    if (!split_attributes(without_proof, attrs) || attrs.size() < 2 || attrs[0].first != 'c' ||
        attrs[1].first != 'r')
        return {failure::malformed, {}, false};
    auto binding = base64_decode(attrs[0].second);
    if (!binding || std::string(binding->begin(), binding->end()) != gs2_header_)
        return {failure::malformed, {}, false};
    if (attrs[1].second != nonce_)
        return {failure::nonce_mismatch, {}, false};
    auto proof = base64_decode(client_final.substr(proof_at + 3));
    if (!proof || proof->size() != cred_.stored_key.size())
        return {failure::malformed, {}, false};

    const std::string auth_message =
        client_first_bare_ + "," + server_first_ + "," + std::string(without_proof);
    bytes client_signature = hmac(mech_, cred_.stored_key, auth_message);
    bytes client_key(proof->size());
    for (std::size_t i = 0; i < client_key.size(); ++i)
        client_key[i] = (*proof)[i] ^ client_signature[i];
    bytes stored = hash(digest_of(mech_), client_key.data(), client_key.size());
    if (CRYPTO_memcmp(stored.data(), cred_.stored_key.data(), stored.size()) != 0)
        return {failure::bad_proof, {}, false};
    bytes server_signature = hmac(mech_, cred_.server_key, auth_message);
    return {failure::none, "v=" + base64_encode(server_signature.data(), server_signature.size()),
            true};
}

std::string make_server_nonce() {
    std::uint8_t raw[24];
    RAND_bytes(raw, sizeof raw);
    return base64_encode(raw, sizeof raw);
}

std::string base64_encode(const std::uint8_t* data, std::size_t n) {
    static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    out.reserve((n + 2) / 3 * 4);
    for (std::size_t i = 0; i < n; i += 3) {
        std::uint32_t v = std::uint32_t(data[i]) << 16;
        if (i + 1 < n)
            v |= std::uint32_t(data[i + 1]) << 8;
        if (i + 2 < n)
            v |= data[i + 2];
        out.push_back(table[(v >> 18) & 63]);
        out.push_back(table[(v >> 12) & 63]);
        out.push_back(i + 1 < n ? table[(v >> 6) & 63] : '=');
        out.push_back(i + 2 < n ? table[v & 63] : '=');
    }
    return out;
}

std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view s) {
    if (s.size() % 4 != 0)
        return std::nullopt;
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z')
            return c - 'A';
        if (c >= 'a' && c <= 'z')
            return c - 'a' + 26;
        if (c >= '0' && c <= '9')
            return c - '0' + 52;
        if (c == '+')
            return 62;
        if (c == '/')
            return 63;
        return -1;
    };
    bytes out;
    out.reserve(s.size() / 4 * 3);
    for (std::size_t i = 0; i < s.size(); i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; ++k) {
            char c = s[i + static_cast<std::size_t>(k)];
            if (c == '=' && i + 4 == s.size() && k >= 2) {
                v[k] = 0;
                ++pad;
                continue;
            }
            if (pad > 0)
                return std::nullopt;  // data after padding
            v[k] = value(c);
            if (v[k] < 0)
                return std::nullopt;
        }
        std::uint32_t n = std::uint32_t(v[0]) << 18 | std::uint32_t(v[1]) << 12 |
                          std::uint32_t(v[2]) << 6 | std::uint32_t(v[3]);
        out.push_back(static_cast<std::uint8_t>(n >> 16));
        if (pad < 2)
            out.push_back(static_cast<std::uint8_t>(n >> 8));
        if (pad < 1)
            out.push_back(static_cast<std::uint8_t>(n));
    }
    return out;
}

}  // namespace mongosim
