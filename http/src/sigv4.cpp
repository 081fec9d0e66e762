#include <penne/http/sigv4.hpp>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <ostream>
#include <utility>

namespace penne::http {
namespace {

// ---------------------------------------------------------------------------------------------
// Error category

class sigv4_category_impl final : public classified_category {
public:
    const char* name() const noexcept override { return "penne.sigv4"; }
    std::string message(int ev) const override {
        switch (static_cast<sigv4_errc>(ev)) {
            case sigv4_errc::missing_host:
                return "the request to sign has no Host header";
            case sigv4_errc::invalid_method:
                return "the request method is not a valid HTTP method";
            case sigv4_errc::invalid_target:
                return "the request target is not a valid origin-form path";
            case sigv4_errc::invalid_header:
                return "a request header cannot be signed";
            case sigv4_errc::missing_credentials:
                return "the access key id or secret access key is empty";
            case sigv4_errc::invalid_credentials:
                return "the credentials hold characters that cannot be sent";
            case sigv4_errc::invalid_scope:
                return "the signing region or service is invalid";
            case sigv4_errc::invalid_time:
                return "the signing time is out of range";
            case sigv4_errc::invalid_expiry:
                return "the presigned URL expiry is out of range";
            case sigv4_errc::reserved_query_parameter:
                return "the request already carries a signing query parameter";
        }
        return "unknown sigv4 error";
    }
    // Signing is deterministic: the same inputs fail the same way on every attempt.
    bool retryable(int) const noexcept override { return false; }
};

error_code fail(sigv4_errc e, diagnostics& diag, std::string message) {
    diag.message = std::move(message);
    return make_error_code(e);
}

// ---------------------------------------------------------------------------------------------
// Character classes

constexpr bool is_alnum(unsigned char c) noexcept {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

constexpr bool is_unreserved(unsigned char c) noexcept {
    return is_alnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// RFC 9110 tchar.
constexpr bool is_tchar(unsigned char c) noexcept {
    if (is_alnum(c))
        return true;
    switch (c) {
        case '!':
        case '#':
        case '$':
        case '%':
        case '&':
        case '\'':
        case '*':
        case '+':
        case '-':
        case '.':
        case '^':
        case '_':
        case '`':
        case '|':
        case '~':
            return true;
        default:
            return false;
    }
}

// Visible ASCII: what can travel in a header value or a query parameter unchanged in meaning.
bool is_visible_ascii(std::string_view s) noexcept {
    return std::all_of(s.begin(), s.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u > 0x20 && u < 0x7f;
    });
}

constexpr char to_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return to_lower(x) == to_lower(y);
           });
}

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

constexpr char hex_upper[] = "0123456789ABCDEF";
constexpr char hex_lower[] = "0123456789abcdef";

void append_encoded(std::string& out, std::string_view raw, bool encode_slash) {
    for (char ch : raw) {
        auto c = static_cast<unsigned char>(ch);
        if (is_unreserved(c) || (c == '/' && !encode_slash)) {
            out.push_back(ch);
        } else {
            out.push_back('%');
            out.push_back(hex_upper[c >> 4]);
            out.push_back(hex_upper[c & 0x0f]);
        }
    }
}

// Canonical form of one already-encoded component: decoded, then encoded once with '/' escaped.
// Most components hold no escape, so they skip the intermediate string.
void append_decoded_encoded(std::string& out, std::string_view encoded) {
    if (encoded.find('%') == std::string_view::npos)
        append_encoded(out, encoded, true);
    else
        append_encoded(out, uri_decode(encoded), true);
}

// ---------------------------------------------------------------------------------------------
// SHA-256 and HMAC over one EVP context. The first init fetches the algorithm; later inits
// pass a null type and reuse it, which keeps OpenSSL 3's implicit fetch off the hot path.

class sha256_ctx {
public:
    sha256_ctx() : ctx_(EVP_MD_CTX_new()) {
        if (ctx_ == nullptr)
            throw std::bad_alloc();
    }
    ~sha256_ctx() { EVP_MD_CTX_free(ctx_); }
    sha256_ctx(const sha256_ctx&) = delete;
    sha256_ctx& operator=(const sha256_ctx&) = delete;

    void init() {
        int ok = initialised_ ? EVP_DigestInit_ex(ctx_, nullptr, nullptr)
                              : EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr);
        if (ok != 1)
            throw std::bad_alloc();  // only fails when the provider cannot allocate
        initialised_ = true;
    }
    void update(const void* data, std::size_t size) {
        if (size != 0 && EVP_DigestUpdate(ctx_, data, size) != 1)
            throw std::bad_alloc();
    }
    void update(std::string_view s) { update(s.data(), s.size()); }
    void final(unsigned char* out) {
        unsigned int len = 0;
        if (EVP_DigestFinal_ex(ctx_, out, &len) != 1 || len != 32)
            throw std::bad_alloc();
    }

    std::array<unsigned char, 32> digest(std::string_view data) {
        std::array<unsigned char, 32> out{};
        init();
        update(data);
        final(out.data());
        return out;
    }

    std::array<unsigned char, 32> hmac(std::span<const unsigned char> key, std::string_view data) {
        constexpr std::size_t block = 64;
        std::array<unsigned char, block> k0{};
        if (key.size() > block) {
            init();
            update(key.data(), key.size());
            final(k0.data());
        } else {
            std::memcpy(k0.data(), key.data(), key.size());
        }
        std::array<unsigned char, block> pad{};
        for (std::size_t i = 0; i < block; ++i)
            pad[i] = static_cast<unsigned char>(k0[i] ^ 0x36);
        std::array<unsigned char, 32> inner{};
        init();
        update(pad.data(), pad.size());
        update(data);
        final(inner.data());
        for (std::size_t i = 0; i < block; ++i)
            pad[i] = static_cast<unsigned char>(k0[i] ^ 0x5c);
        std::array<unsigned char, 32> out{};
        init();
        update(pad.data(), pad.size());
        update(inner.data(), inner.size());
        final(out.data());
        OPENSSL_cleanse(k0.data(), k0.size());
        OPENSSL_cleanse(pad.data(), pad.size());
        return out;
    }

private:
    EVP_MD_CTX* ctx_;
    bool initialised_ = false;
};

void append_hex(std::string& out, std::span<const unsigned char> bytes) {
    for (unsigned char b : bytes) {
        out.push_back(hex_lower[b >> 4]);
        out.push_back(hex_lower[b & 0x0f]);
    }
}

signing_key derive_key(sha256_ctx& h, std::string_view secret, std::string_view date,
                       std::string_view region, std::string_view service) {
    std::string k_secret;
    k_secret.reserve(4 + secret.size());
    k_secret.append("AWS4").append(secret);
    auto as_bytes = [](const std::string& s) {
        return std::span<const unsigned char>(reinterpret_cast<const unsigned char*>(s.data()),
                                              s.size());
    };
    auto k_date = h.hmac(as_bytes(k_secret), date);
    OPENSSL_cleanse(k_secret.data(), k_secret.size());
    auto k_region = h.hmac(k_date, region);
    auto k_service = h.hmac(k_region, service);
    auto key = h.hmac(k_service, "aws4_request");
    OPENSSL_cleanse(k_date.data(), k_date.size());
    OPENSSL_cleanse(k_region.data(), k_region.size());
    OPENSSL_cleanse(k_service.data(), k_service.size());
    return key;
}

// ---------------------------------------------------------------------------------------------
// Canonical query

using param = std::pair<std::string, std::string>;  // encoded name, encoded value

void collect_query(std::string_view query, std::vector<param>& out) {
    while (!query.empty()) {
        auto amp = query.find('&');
        std::string_view piece = query.substr(0, amp);
        query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
        if (piece.empty())
            continue;  // "a=1&&b=2": an empty piece is no parameter
        auto eq = piece.find('=');
        std::string_view name = piece.substr(0, eq);
        std::string_view value =
            eq == std::string_view::npos ? std::string_view{} : piece.substr(eq + 1);
        param p;
        append_decoded_encoded(p.first, name);
        append_decoded_encoded(p.second, value);
        out.push_back(std::move(p));
    }
}

std::string join_query(std::vector<param>& params) {
    std::sort(params.begin(), params.end());
    std::string out;
    for (const auto& [name, value] : params) {
        if (!out.empty())
            out.push_back('&');
        out.append(name).append("=").append(value);
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// Canonical headers

// Fields a proxy or the transport may add, drop or rewrite, plus the ones the signer owns.
bool excluded_header(std::string_view lower_name) noexcept {
    static constexpr std::string_view names[] = {
        "authorization", "connection",           "expect",  "keep-alive", "te",
        "trailer",       "transfer-encoding",    "upgrade", "user-agent", "x-amzn-trace-id",
        "x-amz-date",    "x-amz-security-token",
    };
    if (lower_name.starts_with("proxy-"))
        return true;
    return std::find(std::begin(names), std::end(names), lower_name) != std::end(names);
}

// Trim and collapse runs of spaces and tabs to one space, appending whole words at a time.
void append_canonical_value(std::string& out, std::string_view value) {
    auto is_space = [](char c) { return c == ' ' || c == '\t'; };
    std::size_t i = 0;
    bool first = true;
    while (i < value.size()) {
        while (i < value.size() && is_space(value[i]))
            ++i;
        if (i == value.size())
            break;
        std::size_t end = i;
        while (end < value.size() && !is_space(value[end]))
            ++end;
        if (!first)
            out.push_back(' ');
        out.append(value.substr(i, end - i));
        first = false;
        i = end;
    }
}

struct canonical_field {
    std::string name;   // lowercase
    std::string value;  // canonical
};

struct prepared_headers {
    std::string canonical;       // "name:value\n" for each signed name
    std::string signed_names;    // "a;b;c"
    std::string content_sha256;  // the x-amz-content-sha256 field's value, when present
    bool has_host = false;
    bool has_content_sha256 = false;
};

error_code prepare_headers(std::span<const header_view> headers,
                           std::span<const std::pair<std::string_view, std::string_view>> extra,
                           prepared_headers& out, diagnostics& diag) {
    std::vector<canonical_field> fields;
    fields.reserve(headers.size() + extra.size());
    for (const auto& h : headers) {
        if (!is_http_token(h.name))
            return fail(sigv4_errc::invalid_header, diag,
                        "sigv4: a header field name is empty or not an HTTP token");
        canonical_field f;
        f.name.reserve(h.name.size());
        for (char c : h.name)
            f.name.push_back(to_lower(c));
        if (excluded_header(f.name))
            continue;
        for (char c : h.value) {
            if (c == '\r' || c == '\n' || c == '\0')
                return fail(
                    sigv4_errc::invalid_header, diag,
                    "sigv4: the value of header '" + f.name + "' holds a CR, LF or NUL byte");
        }
        append_canonical_value(f.value, h.value);
        if (f.name == "host")
            out.has_host = true;
        if (f.name == "x-amz-content-sha256") {
            if (out.has_content_sha256)
                return fail(sigv4_errc::invalid_header, diag,
                            "sigv4: x-amz-content-sha256 appears more than once");
            out.has_content_sha256 = true;
            out.content_sha256 = f.value;
        }
        fields.push_back(std::move(f));
    }
    for (const auto& [name, value] : extra) {
        canonical_field f{std::string(name), {}};
        append_canonical_value(f.value, value);
        fields.push_back(std::move(f));
    }
    // Stable: repeated fields keep the order in which they were sent.
    std::stable_sort(fields.begin(), fields.end(),
                     [](const auto& a, const auto& b) { return a.name < b.name; });
    for (std::size_t i = 0; i < fields.size(); ++i) {
        if (i > 0 && fields[i].name == fields[i - 1].name) {
            out.canonical.back() = ',';  // replace the previous line's '\n'
        } else {
            if (!out.signed_names.empty())
                out.signed_names.push_back(';');
            out.signed_names.append(fields[i].name);
            out.canonical.append(fields[i].name).push_back(':');
        }
        out.canonical.append(fields[i].value).push_back('\n');
    }
    return {};
}

// ---------------------------------------------------------------------------------------------
// Validation shared by both variants

bool valid_scope_part(std::string_view s) noexcept {
    return !s.empty() && is_visible_ascii(s) && s.find('/') == std::string_view::npos;
}

struct split_target {
    std::string_view path;
    std::string_view query;
    bool has_question_mark = false;
};

error_code validate(const sigv4_request& request, const credentials& creds,
                    const sigv4_options& opts, split_target& target, diagnostics& diag) {
    if (!is_http_token(request.method))
        return fail(sigv4_errc::invalid_method, diag,
                    "sigv4: the method is empty or not an HTTP token");
    if (request.target.empty() || request.target.front() != '/')
        return fail(sigv4_errc::invalid_target, diag,
                    "sigv4: the request target must be origin-form and start with '/'");
    for (char ch : request.target) {
        auto c = static_cast<unsigned char>(ch);
        // A space is tolerated because AWS's own suite signs unencoded paths; control bytes
        // and fragments would never reach the server as signed.
        if (c < 0x20 || c == 0x7f || c == '#')
            return fail(sigv4_errc::invalid_target, diag,
                        "sigv4: the request target holds a control byte or a '#' fragment");
    }
    auto q = request.target.find('?');
    target.path = request.target.substr(0, q);
    if (q != std::string_view::npos) {
        target.query = request.target.substr(q + 1);
        target.has_question_mark = true;
    }
    if (creds.access_key_id.empty() || creds.secret_access_key.empty())
        return fail(sigv4_errc::missing_credentials, diag,
                    "sigv4: the access key id or the secret access key is empty");
    if (!is_visible_ascii(creds.access_key_id) ||
        creds.access_key_id.find_first_of("/,=") != std::string::npos)
        return fail(sigv4_errc::invalid_credentials, diag,
                    "sigv4: the access key id holds characters not allowed in a credential");
    if (!is_visible_ascii(creds.session_token))
        return fail(sigv4_errc::invalid_credentials, diag,
                    "sigv4: the session token holds spaces or control characters");
    if (!valid_scope_part(opts.region) || !valid_scope_part(opts.service))
        return fail(sigv4_errc::invalid_scope, diag,
                    "sigv4: region '" + opts.region + "' or service '" + opts.service +
                        "' is empty or holds '/', spaces or control characters");
    return {};
}

std::string credential_scope(std::string_view date, const sigv4_options& opts) {
    std::string scope;
    scope.reserve(date.size() + opts.region.size() + opts.service.size() + 16);
    scope.append(date).append("/").append(opts.region).append("/").append(opts.service);
    scope.append("/aws4_request");
    return scope;
}

std::string make_canonical_request(std::string_view method, std::string_view uri,
                                   std::string_view query, const prepared_headers& headers,
                                   std::string_view payload_hash) {
    std::string out;
    out.reserve(method.size() + uri.size() + query.size() + headers.canonical.size() +
                headers.signed_names.size() + payload_hash.size() + 8);
    out.append(method).push_back('\n');
    out.append(uri).push_back('\n');
    out.append(query).push_back('\n');
    out.append(headers.canonical).push_back('\n');
    out.append(headers.signed_names).push_back('\n');
    out.append(payload_hash);
    return out;
}

std::string make_string_to_sign(sha256_ctx& h, std::string_view amz_date, std::string_view scope,
                                std::string_view canonical_request) {
    std::string out;
    out.reserve(sigv4_algorithm.size() + amz_date.size() + scope.size() + 67);
    out.append(sigv4_algorithm).push_back('\n');
    out.append(amz_date).push_back('\n');
    out.append(scope).push_back('\n');
    append_hex(out, h.digest(canonical_request));
    return out;
}

// `field` is the request's own x-amz-content-sha256 value, when it has one.
std::string payload_hash_for(sha256_ctx& h, const sigv4_request& request, const std::string* field,
                             bool unsigned_payload) {
    if (field != nullptr)
        return *field;
    if (!request.payload_sha256.empty())
        return std::string(request.payload_sha256);
    if (unsigned_payload)
        return std::string(unsigned_payload_hash);
    std::string out;
    out.reserve(64);
    append_hex(out, h.digest(request.payload));
    return out;
}

bool is_reserved_parameter(std::string_view encoded_name) {
    static constexpr std::string_view names[] = {
        "X-Amz-Algorithm",     "X-Amz-Credential",     "X-Amz-Date",      "X-Amz-Expires",
        "X-Amz-SignedHeaders", "X-Amz-Security-Token", "X-Amz-Signature",
    };
    return std::any_of(std::begin(names), std::end(names),
                       [&](std::string_view n) { return iequals(n, encoded_name); });
}

}  // namespace

bool is_http_token(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return is_tchar(static_cast<unsigned char>(c));
    });
}

// ---------------------------------------------------------------------------------------------

const boost::system::error_category& sigv4_category() noexcept {
    static const sigv4_category_impl cat;
    return cat;
}

std::string to_string(const credentials& c) {
    std::string out = "credentials{access_key_id=";
    out.append(c.access_key_id);
    out.append(", secret_access_key=");
    out.append(c.secret_access_key.empty() ? "<empty>" : "<redacted>");
    out.append(", session_token=");
    out.append(c.session_token.empty() ? "<none>" : "<redacted>");
    out.push_back('}');
    return out;
}

std::ostream& operator<<(std::ostream& os, const credentials& c) {
    return os << to_string(c);
}

void PrintTo(const credentials& c, std::ostream* os) {
    *os << to_string(c);
}

sigv4_options sigv4_options::s3(std::string region) {
    sigv4_options o;
    o.region = std::move(region);
    o.service = "s3";
    o.normalize_path = false;
    o.double_encode_path = false;
    o.content_sha256_header = true;
    o.presign_unsigned_payload = true;
    return o;
}

// ---------------------------------------------------------------------------------------------
// Building blocks

std::string uri_encode(std::string_view raw, bool encode_slash) {
    std::string out;
    out.reserve(raw.size() + raw.size() / 2);
    append_encoded(out, raw, encode_slash);
    return out;
}

std::string uri_decode(std::string_view encoded) {
    std::string out;
    out.reserve(encoded.size());
    for (std::size_t i = 0; i < encoded.size(); ++i) {
        if (encoded[i] == '%' && i + 2 < encoded.size()) {
            int hi = hex_value(encoded[i + 1]);
            int lo = hex_value(encoded[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out.push_back(static_cast<char>((hi << 4) | lo));
                i += 2;
                continue;
            }
        }
        out.push_back(encoded[i]);
    }
    return out;
}

std::string canonical_uri(std::string_view path, bool normalize, bool double_encode) {
    std::string normalized;
    if (normalize) {
        // RFC 3986 dot-segment removal, plus AWS's collapsing of empty segments.
        std::vector<std::string_view> segments;
        bool trailing_slash = false;
        std::string_view rest = path;
        while (!rest.empty()) {
            auto slash = rest.find('/');
            std::string_view seg = rest.substr(0, slash);
            bool last = slash == std::string_view::npos;
            rest = last ? std::string_view{} : rest.substr(slash + 1);
            if (seg.empty() || seg == ".") {
                trailing_slash = true;
            } else if (seg == "..") {
                if (!segments.empty())
                    segments.pop_back();
                trailing_slash = true;
            } else {
                segments.push_back(seg);
                trailing_slash = !last && rest.empty();
            }
        }
        normalized.push_back('/');
        for (std::size_t i = 0; i < segments.size(); ++i) {
            if (i > 0)
                normalized.push_back('/');
            normalized.append(segments[i]);
        }
        if (trailing_slash && !segments.empty())
            normalized.push_back('/');
        path = normalized;
    }
    if (path.empty())
        return "/";
    std::string out;
    out.reserve(path.size() + path.size() / 2);
    if (double_encode) {
        append_encoded(out, path, false);
        return out;
    }
    // Single encoding: each segment as it decodes, encoded once, so a path the client built
    // with uri_encode_path signs as itself and a stray unencoded byte still signs the way the
    // server will read it.
    std::string_view rest = path;
    while (true) {
        auto slash = rest.find('/');
        append_decoded_encoded(out, rest.substr(0, slash));
        if (slash == std::string_view::npos)
            break;
        out.push_back('/');
        rest = rest.substr(slash + 1);
    }
    return out;
}

std::string canonical_query_string(std::string_view query) {
    std::vector<param> params;
    collect_query(query, params);
    return join_query(params);
}

std::string format_amz_date(std::chrono::system_clock::time_point t) {
    using namespace std::chrono;
    auto secs = floor<seconds>(t);
    auto day = floor<days>(secs);
    year_month_day ymd{day};
    int y = static_cast<int>(ymd.year());
    if (y < 1970 || y > 9999)
        return {};
    hh_mm_ss hms{secs - day};
    auto put = [](std::string& s, unsigned v, int width) {
        char buf[4];
        for (int i = width - 1; i >= 0; --i) {
            buf[i] = static_cast<char>('0' + v % 10);
            v /= 10;
        }
        s.append(buf, static_cast<std::size_t>(width));
    };
    std::string out;
    out.reserve(16);
    put(out, static_cast<unsigned>(y), 4);
    put(out, static_cast<unsigned>(ymd.month()), 2);
    put(out, static_cast<unsigned>(ymd.day()), 2);
    out.push_back('T');
    put(out, static_cast<unsigned>(hms.hours().count()), 2);
    put(out, static_cast<unsigned>(hms.minutes().count()), 2);
    put(out, static_cast<unsigned>(hms.seconds().count()), 2);
    out.push_back('Z');
    return out;
}

std::string to_hex(std::span<const unsigned char> bytes) {
    std::string out;
    out.reserve(bytes.size() * 2);
    append_hex(out, bytes);
    return out;
}

std::string sha256_hex(std::string_view data) {
    sha256_ctx h;
    return to_hex(h.digest(data));
}

std::array<unsigned char, 32> hmac_sha256(std::span<const unsigned char> key,
                                          std::string_view data) {
    sha256_ctx h;
    return h.hmac(key, data);
}

signing_key derive_signing_key(std::string_view secret, std::string_view date,
                               std::string_view region, std::string_view service) {
    sha256_ctx h;
    return derive_key(h, secret, date, region, service);
}

// ---------------------------------------------------------------------------------------------
// Signing-key cache

signing_key_cache::signing_key_cache(std::size_t capacity)
    : capacity_(std::max<std::size_t>(capacity, 1)) {
    entries_.reserve(capacity_);
}

signing_key_cache::~signing_key_cache() {
    for (auto& e : entries_)
        wipe(e);
}

void signing_key_cache::wipe(entry& e) noexcept {
    if (!e.secret.empty())
        OPENSSL_cleanse(e.secret.data(), e.secret.size());
    OPENSSL_cleanse(e.key.data(), e.key.size());
}

signing_key signing_key_cache::get(std::string_view secret, std::string_view date,
                                   std::string_view region, std::string_view service) {
    auto matches = [&](const entry& e) {
        return e.date == date && e.region == region && e.service == service &&
               e.secret.size() == secret.size() &&
               CRYPTO_memcmp(e.secret.data(), secret.data(), secret.size()) == 0;
    };
    {
        std::lock_guard lock(mutex_);
        for (auto& e : entries_) {
            if (matches(e)) {
                e.last_used = ++clock_;
                ++hits_;
                return e.key;
            }
        }
        ++misses_;
    }
    // Derive outside the lock: four HMACs are long next to the lookups other threads wait on.
    signing_key key = derive_signing_key(secret, date, region, service);
    std::lock_guard lock(mutex_);
    for (auto& e : entries_) {
        if (matches(e)) {  // another thread derived it meanwhile
            e.last_used = ++clock_;
            return key;
        }
    }
    entry* slot = nullptr;
    if (entries_.size() < capacity_) {
        slot = &entries_.emplace_back();
    } else {
        slot = &*std::min_element(
            entries_.begin(), entries_.end(),
            [](const auto& a, const auto& b) { return a.last_used < b.last_used; });
        wipe(*slot);
    }
    slot->secret.assign(secret);
    slot->date.assign(date);
    slot->region.assign(region);
    slot->service.assign(service);
    slot->key = key;
    slot->last_used = ++clock_;
    return key;
}

std::uint64_t signing_key_cache::hits() const {
    std::lock_guard lock(mutex_);
    return hits_;
}

std::uint64_t signing_key_cache::misses() const {
    std::lock_guard lock(mutex_);
    return misses_;
}

std::size_t signing_key_cache::size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
}

// ---------------------------------------------------------------------------------------------
// Signer

sigv4_signer::sigv4_signer(sigv4_options options) : options_(std::move(options)) {}

error_code sigv4_signer::sign(const sigv4_request& request, const credentials& creds,
                              std::chrono::system_clock::time_point now, sigv4_signed_headers& out,
                              diagnostics& diag) const {
    split_target target;
    if (auto ec = validate(request, creds, options_, target, diag))
        return ec;
    std::string amz_date = format_amz_date(now);
    if (amz_date.empty())
        return fail(sigv4_errc::invalid_time, diag,
                    "sigv4: the signing time is outside the years 1970..9999");
    std::string_view date = std::string_view(amz_date).substr(0, 8);

    // The payload hash can come from the request's own x-amz-content-sha256 field, so look at
    // the fields once before deciding which ones to add.
    bool caller_content_sha256 = false;
    for (const auto& h : request.headers)
        caller_content_sha256 = caller_content_sha256 || iequals(h.name, "x-amz-content-sha256");

    sha256_ctx h;
    std::string payload_hash;
    if (!caller_content_sha256)
        payload_hash = payload_hash_for(h, request, nullptr, options_.unsigned_payload);

    std::pair<std::string_view, std::string_view> extra[3];
    std::size_t n_extra = 0;
    extra[n_extra++] = {"x-amz-date", amz_date};
    bool sign_token = !creds.session_token.empty() && !options_.omit_session_token;
    if (sign_token)
        extra[n_extra++] = {"x-amz-security-token", creds.session_token};
    bool add_content_sha256 = options_.content_sha256_header && !caller_content_sha256;
    if (add_content_sha256)
        extra[n_extra++] = {"x-amz-content-sha256", payload_hash};

    prepared_headers headers;
    if (auto ec = prepare_headers(request.headers, std::span(extra, n_extra), headers, diag))
        return ec;
    if (!headers.has_host)
        return fail(sigv4_errc::missing_host, diag, "sigv4: the request has no Host header");
    if (caller_content_sha256)
        payload_hash = headers.content_sha256;

    std::string scope = credential_scope(date, options_);
    out.canonical_request = make_canonical_request(
        request.method,
        canonical_uri(target.path, options_.normalize_path, options_.double_encode_path),
        canonical_query_string(target.query), headers, payload_hash);
    out.string_to_sign = make_string_to_sign(h, amz_date, scope, out.canonical_request);
    signing_key key = cache_.get(creds.secret_access_key, date, options_.region, options_.service);
    out.signature = to_hex(h.hmac(key, out.string_to_sign));
    OPENSSL_cleanse(key.data(), key.size());

    out.authorization.clear();
    out.authorization.reserve(200);
    out.authorization.append(sigv4_algorithm)
        .append(" Credential=")
        .append(creds.access_key_id)
        .append("/")
        .append(scope)
        .append(", SignedHeaders=")
        .append(headers.signed_names)
        .append(", Signature=")
        .append(out.signature);

    out.headers.clear();
    out.headers.push_back({"X-Amz-Date", std::move(amz_date)});
    if (!creds.session_token.empty())  // sent even when omitted from the signature
        out.headers.push_back({"X-Amz-Security-Token", creds.session_token});
    if (add_content_sha256)
        out.headers.push_back({"X-Amz-Content-SHA256", payload_hash});
    out.headers.push_back({"Authorization", out.authorization});
    return {};
}

error_code sigv4_signer::presign(const sigv4_request& request, const credentials& creds,
                                 std::chrono::system_clock::time_point now,
                                 std::chrono::seconds expires, sigv4_presigned& out,
                                 diagnostics& diag) const {
    split_target target;
    if (auto ec = validate(request, creds, options_, target, diag))
        return ec;
    if (expires.count() < 1 || expires > max_presign_expiry)
        return fail(sigv4_errc::invalid_expiry, diag,
                    "sigv4: a presigned URL must expire within 1 to 604800 seconds, not " +
                        std::to_string(expires.count()));
    std::string amz_date = format_amz_date(now);
    if (amz_date.empty())
        return fail(sigv4_errc::invalid_time, diag,
                    "sigv4: the signing time is outside the years 1970..9999");
    std::string_view date = std::string_view(amz_date).substr(0, 8);

    std::vector<param> params;
    collect_query(target.query, params);
    for (const auto& p : params) {
        if (is_reserved_parameter(p.first))
            return fail(sigv4_errc::reserved_query_parameter, diag,
                        "sigv4: the target already carries the signing parameter " + p.first);
    }

    prepared_headers headers;
    if (auto ec = prepare_headers(request.headers, {}, headers, diag))
        return ec;
    if (!headers.has_host)
        return fail(sigv4_errc::missing_host, diag, "sigv4: the request has no Host header");

    sha256_ctx h;
    std::string payload_hash =
        payload_hash_for(h, request, headers.has_content_sha256 ? &headers.content_sha256 : nullptr,
                         options_.presign_unsigned_payload);
    std::string scope = credential_scope(date, options_);

    // The signing parameters, already encoded, in the order they are appended to the URL.
    std::string credential = creds.access_key_id + "/" + scope;
    std::string expires_text = std::to_string(expires.count());
    std::vector<param> signing_params;
    signing_params.reserve(6);
    signing_params.emplace_back("X-Amz-Algorithm", std::string(sigv4_algorithm));
    signing_params.emplace_back("X-Amz-Credential", uri_encode(credential));
    signing_params.emplace_back("X-Amz-Date", amz_date);
    signing_params.emplace_back("X-Amz-SignedHeaders", uri_encode(headers.signed_names));
    signing_params.emplace_back("X-Amz-Expires", expires_text);
    bool sign_token = !creds.session_token.empty() && !options_.omit_session_token;
    for (const auto& p : signing_params)
        params.push_back(p);
    if (sign_token)
        params.emplace_back("X-Amz-Security-Token", uri_encode(creds.session_token));
    if (!creds.session_token.empty())
        signing_params.emplace_back("X-Amz-Security-Token", uri_encode(creds.session_token));

    out.canonical_request = make_canonical_request(
        request.method,
        canonical_uri(target.path, options_.normalize_path, options_.double_encode_path),
        join_query(params), headers, payload_hash);
    out.string_to_sign = make_string_to_sign(h, amz_date, scope, out.canonical_request);
    signing_key key = cache_.get(creds.secret_access_key, date, options_.region, options_.service);
    out.signature = to_hex(h.hmac(key, out.string_to_sign));
    OPENSSL_cleanse(key.data(), key.size());

    out.target.assign(request.target);
    if (!target.has_question_mark)
        out.target.push_back('?');
    else if (!target.query.empty() && target.query.back() != '&')
        out.target.push_back('&');
    for (const auto& [name, value] : signing_params)
        out.target.append(name).append("=").append(value).append("&");
    out.target.append("X-Amz-Signature=").append(out.signature);
    return {};
}

}  // namespace penne::http
