#include <penne/s3/requests.hpp>

#include <openssl/evp.h>
#include <pugixml.hpp>

#include <charconv>

namespace penne::s3 {
namespace {

using http::header_field;
using http::uri_encode;
using http::uri_encode_path;

constexpr std::string_view s3_xmlns = "http://s3.amazonaws.com/doc/2006-03-01/";

bool is_alpha(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}
bool is_lower_alnum(char c) noexcept {
    return (c >= 'a' && c <= 'z') || is_digit(c);
}
bool is_hex(char c) noexcept {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
char to_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
std::string lowercase(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        c = to_lower(c);
    return out;
}
int hex_value(char c) noexcept {
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c - 'A' + 10;
}

// A value for a diagnostic: printable ASCII as it is, anything else as \xNN, at most 80
// bytes.
std::string printable(std::string_view s) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out = "\"";
    for (std::size_t i = 0; i < s.size() && i < 80; ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += digits[c >> 4];
            out += digits[c & 15];
        }
    }
    if (s.size() > 80)
        out += "...";
    out += '"';
    return out;
}

error_code config_error(diagnostics& diag, std::string message) {
    diag.message = std::move(message);
    return make_error_code(penne::errc::invalid_config);
}

// Length of the UTF-8 sequence at s[i] when it is well formed (shortest form, no surrogate,
// at most U+10FFFF), else 0.
std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80)
        return 1;
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3;
        if (b0 == 0xE0)
            lo = 0xA0;  // no overlong 3-byte forms
        if (b0 == 0xED)
            hi = 0x9F;  // no surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4;
        if (b0 == 0xF0)
            lo = 0x90;  // no overlong 4-byte forms
        if (b0 == 0xF4)
            hi = 0x8F;  // nothing past U+10FFFF
    } else {
        return 0;
    }
    if (i + len > s.size())
        return 0;
    const auto b1 = static_cast<unsigned char>(s[i + 1]);
    if (b1 < lo || b1 > hi)
        return 0;
    for (std::size_t k = 2; k < len; ++k) {
        const auto b = static_cast<unsigned char>(s[i + k]);
        if (b < 0x80 || b > 0xBF)
            return 0;
    }
    return len;
}

// Counts code points; npos when `s` is not valid UTF-8 or holds a control character.
std::size_t utf8_text_length(std::string_view s) noexcept {
    std::size_t count = 0;
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f)
            return std::string_view::npos;
        const auto n = utf8_sequence(s, i);
        if (n == 0)
            return std::string_view::npos;
        i += n;
        ++count;
    }
    return count;
}

bool printable_ascii(std::string_view s) noexcept {
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

bool is_ipv4(std::string_view s) noexcept {
    int parts = 0;
    std::size_t i = 0;
    while (i <= s.size()) {
        const auto dot = s.find('.', i);
        const auto part = s.substr(i, dot == std::string_view::npos ? s.npos : dot - i);
        if (part.empty() || part.size() > 3)
            return false;
        int v = 0;
        for (const char c : part) {
            if (!is_digit(c))
                return false;
            v = v * 10 + (c - '0');
        }
        if (v > 255)
            return false;
        ++parts;
        if (dot == std::string_view::npos)
            break;
        i = dot + 1;
    }
    return parts == 4;
}

bool is_ip_literal(std::string_view host) noexcept {
    return (!host.empty() && host.front() == '[') || is_ipv4(host);
}

// A bucket name that works as a DNS host label sequence (virtual-hosted addressing).
bool dns_compatible(std::string_view b) noexcept {
    if (b.size() < 3 || b.size() > 63 || is_ipv4(b))
        return false;
    std::size_t start = 0;
    while (true) {
        const auto dot = b.find('.', start);
        const auto label = b.substr(start, dot == std::string_view::npos ? b.npos : dot - start);
        if (label.empty() || !is_lower_alnum(label.front()) || !is_lower_alnum(label.back()))
            return false;
        for (const char c : label) {
            if (!is_lower_alnum(c) && c != '-')
                return false;
        }
        if (dot == std::string_view::npos)
            return true;
        start = dot + 1;
    }
}

// "us-east-1", "us-gov-west-1", "ap-southeast-2": two letters, letter words, a number.
bool looks_like_region(std::string_view s) noexcept {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    while (true) {
        const auto dash = s.find('-', start);
        parts.push_back(s.substr(start, dash == std::string_view::npos ? s.npos : dash - start));
        if (dash == std::string_view::npos)
            break;
        start = dash + 1;
    }
    if (parts.size() < 3 || parts.front().size() != 2)
        return false;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
        if (parts[i].empty())
            return false;
        for (const char c : parts[i]) {
            if (c < 'a' || c > 'z')
                return false;
        }
    }
    if (parts.back().empty())
        return false;
    for (const char c : parts.back()) {
        if (!is_digit(c))
            return false;
    }
    return true;
}

// The region an AWS S3 host name names, "us-east-1" for the global name, empty otherwise.
std::string region_of_aws_host(std::string_view host) {
    std::string_view rest;
    if (host.ends_with(".amazonaws.com")) {
        rest = host.substr(0, host.size() - std::string_view(".amazonaws.com").size());
    } else if (host.ends_with(".amazonaws.com.cn")) {
        rest = host.substr(0, host.size() - std::string_view(".amazonaws.com.cn").size());
    } else {
        return {};
    }
    std::size_t start = 0;
    while (start <= rest.size()) {
        const auto dot = rest.find('.', start);
        auto label = rest.substr(start, dot == std::string_view::npos ? rest.npos : dot - start);
        if (label.starts_with("s3-"))
            label.remove_prefix(3);  // the legacy "s3-eu-west-1.amazonaws.com" form
        if (looks_like_region(label))
            return std::string(label);
        if (dot == std::string_view::npos)
            break;
        start = dot + 1;
    }
    return host == "s3.amazonaws.com" ? "us-east-1" : "";
}

bool default_port(const endpoint& ep) noexcept {
    return ep.port == (ep.tls ? 443 : 80);
}

// Where a request for `bucket` goes, and the path prefix the object path follows.
struct route {
    std::string host_header;
    std::string connect_host;
    std::string path_prefix;  // "/bucket" (path style) or "" (virtual-hosted)
};

route route_for(const endpoint& ep, std::string_view bucket) {
    route r;
    std::string host;
    if (use_path_style(ep, bucket)) {
        host = ep.host;
        r.path_prefix = "/" + uri_encode(bucket);
    } else {
        host = std::string(bucket) + "." + ep.host;
    }
    r.connect_host = host;
    if (!r.connect_host.empty() && r.connect_host.front() == '[')
        r.connect_host = r.connect_host.substr(1, r.connect_host.size() - 2);
    r.host_header = std::move(host);
    if (!default_port(ep)) {
        r.host_header += ':';
        r.host_header += std::to_string(ep.port);
    }
    return r;
}

request make_request(const endpoint& ep, std::string_view method, std::string_view bucket,
                     const std::string* key, std::string_view query) {
    auto r = route_for(ep, bucket);
    request req;
    req.method = method;
    req.host_header = std::move(r.host_header);
    req.connect_host = std::move(r.connect_host);
    req.port = ep.port;
    req.tls = ep.tls;
    if (key != nullptr) {
        req.target = r.path_prefix + uri_encode_path("/" + *key);
    } else {
        req.target = r.path_prefix.empty() ? std::string("/") : r.path_prefix;
    }
    if (!query.empty()) {
        req.target += '?';
        req.target += query;
    }
    return req;
}

request object_request(const endpoint& ep, std::string_view method, std::string_view bucket,
                       std::string_view key, std::string_view query = {}) {
    const std::string k(key);
    return make_request(ep, method, bucket, &k, query);
}

request bucket_request(const endpoint& ep, std::string_view method, std::string_view bucket,
                       std::string_view query = {}) {
    return make_request(ep, method, bucket, nullptr, query);
}

void add_header(request& req, std::string_view name, std::string_view value) {
    req.headers.push_back(header_field{std::string(name), std::string(value)});
}

// Appends "&name=value" (or "name=value" first), the value uri_encoded.
void add_param(std::string& query, std::string_view name, std::string_view value) {
    if (!query.empty())
        query += '&';
    query += name;
    query += '=';
    query += uri_encode(value);
}

void add_object_headers(request& req, const put_options& opts) {
    if (!opts.content_type.empty())
        add_header(req, "Content-Type", opts.content_type);
    if (!opts.content_encoding.empty())
        add_header(req, "Content-Encoding", opts.content_encoding);
    if (!opts.storage_class.empty())
        add_header(req, "x-amz-storage-class", opts.storage_class);
    switch (opts.sse) {
        case sse_mode::none:
            break;
        case sse_mode::s3:
            add_header(req, "x-amz-server-side-encryption", "AES256");
            break;
        case sse_mode::kms:
            add_header(req, "x-amz-server-side-encryption", "aws:kms");
            if (!opts.kms_key_id.empty())
                add_header(req, "x-amz-server-side-encryption-aws-kms-key-id", opts.kms_key_id);
            break;
    }
    if (!opts.tags.empty()) {
        std::string tagging;
        for (const auto& [k, v] : opts.tags) {
            if (!tagging.empty())
                tagging += '&';
            tagging += uri_encode(k);
            tagging += '=';
            tagging += uri_encode(v);
        }
        add_header(req, "x-amz-tagging", tagging);
    }
    for (const auto& [name, value] : opts.metadata)
        add_header(req, "x-amz-meta-" + lowercase(name), value);
}

void xml_escape(std::string_view s, std::string& out) {
    for (const char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&apos;";
                break;
            default:
                out += c;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// XML replies.

std::string_view local_name(const pugi::xml_node& n) {
    std::string_view name = n.name();
    const auto colon = name.find(':');
    return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

pugi::xml_node child(const pugi::xml_node& parent, std::string_view name) {
    for (auto c = parent.first_child(); c; c = c.next_sibling()) {
        if (c.type() == pugi::node_element && local_name(c) == name)
            return c;
    }
    return {};
}

std::string child_text(const pugi::xml_node& parent, std::string_view name) {
    return child(parent, name).text().as_string();
}

// S3's encoding-type=url form encoding: '+' is a space, %XX a byte; a '%' without two hex
// digits stays literal.
std::string form_decode(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] == '%' && i + 2 < s.size() && is_hex(s[i + 1]) && is_hex(s[i + 2])) {
            out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

error_code malformed(diagnostics& diag, std::string message) {
    diag.message = std::move(message);
    return make_error_code(s3_errc::malformed_response);
}

// Loads `xml` and checks that its document element is `root`.
error_code load_reply(std::string_view xml, std::string_view operation, std::string_view root,
                      pugi::xml_document& doc, pugi::xml_node& out, diagnostics& diag) {
    if (xml.find_first_not_of(" \t\r\n") == std::string_view::npos)
        return malformed(diag, "the " + std::string(operation) + " reply is empty");
    const auto parsed =
        doc.load_buffer(xml.data(), xml.size(), pugi::parse_default | pugi::parse_ws_pcdata_single);
    if (!parsed) {
        return malformed(diag, "the " + std::string(operation) + " reply is not XML (" +
                                   parsed.description() + " at byte " +
                                   std::to_string(parsed.offset) + ")");
    }
    out = doc.document_element();
    if (!out)
        return malformed(diag, "the " + std::string(operation) + " reply is empty");
    if (local_name(out) != root) {
        std::string msg = "the " + std::string(operation) + " reply is a " +
                          printable(local_name(out)) + " document, not " + std::string(root);
        if (local_name(out) == "Error")
            msg += " (S3 error code " + printable(child_text(out, "Code")) + ")";
        return malformed(diag, std::move(msg));
    }
    return {};
}

bool read_bool(const pugi::xml_node& parent, std::string_view name, bool& out) {
    const auto n = child(parent, name);
    if (!n) {
        out = false;
        return true;
    }
    const std::string_view v = n.text().as_string();
    if (v == "true") {
        out = true;
    } else if (v == "false") {
        out = false;
    } else {
        return false;
    }
    return true;
}

bool url_encoded(const pugi::xml_node& root) {
    return child_text(root, "EncodingType") == "url";
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Endpoint.

error_code parse_endpoint(std::string_view url, std::string region, addressing style, endpoint& out,
                          diagnostics& diag) {
    if (url.empty())
        return config_error(diag,
                            "s3.endpoint is empty; give a URL such as " + default_endpoint(region));
    endpoint ep;
    ep.style = style;
    const auto scheme_end = url.find("://");
    const std::string scheme =
        lowercase(url.substr(0, scheme_end == std::string_view::npos ? 0 : scheme_end));
    if (scheme == "https") {
        ep.tls = true;
        ep.port = 443;
    } else if (scheme == "http") {
        ep.tls = false;
        ep.port = 80;
    } else {
        return config_error(diag, "s3.endpoint must start with http:// or https:// (for example " +
                                      default_endpoint(region) + ")");
    }
    std::string_view rest = url.substr(scheme_end + 3);
    const auto authority_end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, authority_end);
    const std::string_view tail =
        authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
    if (authority.find('@') != std::string_view::npos)
        return config_error(diag,
                            "s3.endpoint must not contain user information (user:password@); "
                            "configure credentials in the credentials settings");
    std::string_view host_part;
    std::string_view port_part;
    bool has_port = false;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos)
            return config_error(diag, "s3.endpoint has an IPv6 address without its closing ']'");
        host_part = authority.substr(0, close + 1);
        const auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':')
                return config_error(diag,
                                    "s3.endpoint has characters after the IPv6 address "
                                    "that are not a :port");
            has_port = true;
            port_part = after.substr(1);
        }
        const auto inner = host_part.substr(1, host_part.size() - 2);
        bool colon = false;
        for (const char c : inner) {
            if (c == ':') {
                colon = true;
            } else if (!is_hex(c) && c != '.') {
                return config_error(
                    diag, "s3.endpoint host " + printable(host_part) +
                              " is not an IPv6 address (zone identifiers are not supported)");
            }
        }
        if (!colon || inner.size() < 2)
            return config_error(
                diag, "s3.endpoint host " + printable(host_part) + " is not an IPv6 address");
    } else {
        const auto colon = authority.find(':');
        host_part = authority.substr(0, colon);
        if (colon != std::string_view::npos) {
            has_port = true;
            port_part = authority.substr(colon + 1);
        }
        if (host_part.empty())
            return config_error(diag, "s3.endpoint has no host name");
        std::size_t label = 0;
        for (std::size_t i = 0; i < host_part.size(); ++i) {
            const char c = host_part[i];
            if (c == '.') {
                if (label == 0)
                    return config_error(
                        diag, "s3.endpoint host " + printable(host_part) + " has an empty label");
                label = 0;
                continue;
            }
            if (!is_alpha(c) && !is_digit(c) && c != '-' && c != '_')
                return config_error(diag, "s3.endpoint host " + printable(host_part) +
                                              " has a character a host name cannot hold");
            ++label;
        }
        if (label == 0)
            return config_error(
                diag, "s3.endpoint host " + printable(host_part) + " ends with a '.'; remove it");
    }
    if (has_port) {
        unsigned port = 0;
        const auto r = std::from_chars(port_part.data(), port_part.data() + port_part.size(), port);
        if (port_part.empty() || r.ec != std::errc{} ||
            r.ptr != port_part.data() + port_part.size() || port == 0 || port > 65535)
            return config_error(diag, "s3.endpoint port must be a number from 1 to 65535");
        ep.port = static_cast<std::uint16_t>(port);
    }
    if (!tail.empty() && tail != "/") {
        if (tail.find('?') != std::string_view::npos)
            return config_error(diag, "s3.endpoint must not have a query string");
        if (tail.find('#') != std::string_view::npos)
            return config_error(diag, "s3.endpoint must not have a fragment");
        return config_error(diag,
                            "s3.endpoint must not have a path: give the service's root "
                            "URL and the bucket in s3.bucket");
    }
    ep.host = lowercase(host_part);
    if (style == addressing::virtual_hosted && is_ip_literal(ep.host))
        return config_error(diag,
                            "virtual-hosted addressing needs a host name, not the IP "
                            "address " +
                                printable(ep.host) + "; use path-style addressing");
    if (region.empty())
        region = region_of_aws_host(ep.host);
    if (region.empty())
        region = "us-east-1";
    ep.region = std::move(region);
    out = std::move(ep);
    return {};
}

std::string default_endpoint(std::string_view region) {
    if (region.empty())
        region = "us-east-1";
    std::string url = "https://s3." + std::string(region) + ".amazonaws.com";
    if (region.starts_with("cn-"))
        url += ".cn";
    return url;
}

bool use_path_style(const endpoint& ep, std::string_view bucket) {
    switch (ep.style) {
        case addressing::path:
            return true;
        case addressing::virtual_hosted:
            return false;
        case addressing::automatic:
            break;
    }
    if (is_ip_literal(ep.host) || ep.host == "localhost" || ep.host.ends_with(".localhost"))
        return true;
    if (!dns_compatible(bucket))
        return true;
    return ep.tls && bucket.find('.') != std::string_view::npos;
}

std::string_view connect_host(const endpoint& ep) noexcept {
    std::string_view h = ep.host;
    if (h.size() >= 2 && h.front() == '[' && h.back() == ']')
        h = h.substr(1, h.size() - 2);
    return h;
}

error_code validate_bucket_name(std::string_view name, diagnostics& diag) {
    auto fail = [&](std::string_view why) {
        diag.message = "bucket name " + printable(name) + " " + std::string(why);
        return make_error_code(s3_errc::invalid_bucket_name);
    };
    if (name.size() < 3 || name.size() > 63)
        return fail("must be 3 to 63 characters long");
    for (const char c : name) {
        if (!is_lower_alnum(c) && c != '.' && c != '-')
            return fail("may hold only lowercase letters, digits, '.' and '-'");
    }
    if (!is_lower_alnum(name.front()) || !is_lower_alnum(name.back()))
        return fail("must start and end with a letter or digit");
    if (name.find("..") != std::string_view::npos)
        return fail("must not hold two adjacent periods");
    if (is_ipv4(name))
        return fail("must not be formatted as an IP address");
    for (const std::string_view prefix : {"xn--", "sthree-", "amzn-s3-demo-"}) {
        if (name.starts_with(prefix))
            return fail("must not start with the reserved prefix \"" + std::string(prefix) + "\"");
    }
    for (const std::string_view suffix : {"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"}) {
        if (name.ends_with(suffix))
            return fail("must not end with the reserved suffix \"" + std::string(suffix) + "\"");
    }
    return {};
}

error_code validate_key(std::string_view key, diagnostics& diag) {
    auto fail = [&](std::string why) {
        diag.message = "object key " + printable(key) + " " + why;
        return make_error_code(s3_errc::invalid_key);
    };
    if (key.empty())
        return fail("is empty");
    if (key.size() > 1024)
        return fail("is " + std::to_string(key.size()) + " bytes long; S3 allows 1024");
    for (std::size_t i = 0; i < key.size();) {
        const auto c = static_cast<unsigned char>(key[i]);
        if (c < 0x20 || c == 0x7f)
            return fail("holds a control character at byte " + std::to_string(i));
        const auto n = utf8_sequence(key, i);
        if (n == 0)
            return fail("is not valid UTF-8 at byte " + std::to_string(i));
        i += n;
    }
    return {};
}

// ---------------------------------------------------------------------------------------------
// Put options.

error_code validate(const put_options& opts, diagnostics& diag) {
    if (!printable_ascii(opts.content_type))
        return config_error(
            diag, "content type " + printable(opts.content_type) + " must be printable ASCII");
    if (!printable_ascii(opts.content_encoding))
        return config_error(diag, "content encoding " + printable(opts.content_encoding) +
                                      " must be printable ASCII");
    for (const char c : opts.storage_class) {
        if (!(c >= 'A' && c <= 'Z') && !is_digit(c) && c != '_')
            return config_error(diag, "storage class " + printable(opts.storage_class) +
                                          " must be an S3 storage class name such as "
                                          "STANDARD_IA (A-Z, 0-9, _)");
    }
    if (!opts.kms_key_id.empty()) {
        if (opts.sse != sse_mode::kms)
            return config_error(diag,
                                "a KMS key id is set but server-side encryption is not "
                                "kms; set the encryption to kms or remove the key id");
        for (const char c : opts.kms_key_id) {
            const auto u = static_cast<unsigned char>(c);
            if (u <= 0x20 || u >= 0x7f)
                return config_error(diag,
                                    "the KMS key id must be a key id, ARN or alias "
                                    "without spaces or control characters");
        }
    }
    if (opts.tags.size() > 10)
        return config_error(diag, "S3 allows at most 10 tags on an object; " +
                                      std::to_string(opts.tags.size()) + " are set");
    for (std::size_t i = 0; i < opts.tags.size(); ++i) {
        const auto& [k, v] = opts.tags[i];
        const auto klen = utf8_text_length(k);
        if (klen == std::string_view::npos || klen == 0 || klen > 128)
            return config_error(
                diag, "tag key " + printable(k) + " must be 1 to 128 characters of UTF-8 text");
        const auto vlen = utf8_text_length(v);
        if (vlen == std::string_view::npos || vlen > 256)
            return config_error(diag, "the value of tag " + printable(k) +
                                          " must be at most 256 characters of UTF-8 text");
        for (std::size_t j = 0; j < i; ++j) {
            if (opts.tags[j].first == k)
                return config_error(diag, "tag key " + printable(k) + " is set twice");
        }
    }
    std::size_t metadata_bytes = 0;
    for (std::size_t i = 0; i < opts.metadata.size(); ++i) {
        const auto& [name, value] = opts.metadata[i];
        if (name.empty())
            return config_error(diag, "a metadata name is empty");
        if (!http::is_http_token(name))
            return config_error(diag, "metadata name " + printable(name) +
                                          " may hold only letters, digits and "
                                          "!#$%&'*+-.^_`|~");
        if (!printable_ascii(value))
            return config_error(
                diag, "the value of metadata " + printable(name) + " must be printable ASCII");
        const auto lower = lowercase(name);
        for (std::size_t j = 0; j < i; ++j) {
            if (lowercase(opts.metadata[j].first) == lower)
                return config_error(
                    diag, "metadata name " + printable(name) + " is set twice (names ignore case)");
        }
        metadata_bytes += name.size() + value.size();
    }
    if (metadata_bytes > 2048)
        return config_error(diag, "user metadata is " + std::to_string(metadata_bytes) +
                                      " bytes; S3 allows 2048 (names and values together)");
    return {};
}

std::string_view to_string(sse_mode m) noexcept {
    switch (m) {
        case sse_mode::none:
            return "none";
        case sse_mode::s3:
            return "s3";
        case sse_mode::kms:
            return "kms";
    }
    return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Builders.

request put_object(const endpoint& ep, std::string_view bucket, std::string_view key,
                   const put_options& opts, std::string_view body_md5_base64) {
    auto req = object_request(ep, "PUT", bucket, key);
    add_object_headers(req, opts);
    if (opts.content_md5 && !body_md5_base64.empty())
        add_header(req, "Content-MD5", body_md5_base64);
    return req;
}

request create_multipart_upload(const endpoint& ep, std::string_view bucket, std::string_view key,
                                const put_options& opts) {
    auto req = object_request(ep, "POST", bucket, key, "uploads");
    add_object_headers(req, opts);
    return req;
}

request upload_part(const endpoint& ep, std::string_view bucket, std::string_view key,
                    std::string_view upload_id, int part_number, std::string_view md5_base64) {
    std::string query;
    add_param(query, "partNumber", std::to_string(part_number));
    add_param(query, "uploadId", upload_id);
    auto req = object_request(ep, "PUT", bucket, key, query);
    if (!md5_base64.empty())
        add_header(req, "Content-MD5", md5_base64);
    return req;
}

request complete_multipart_upload(const endpoint& ep, std::string_view bucket, std::string_view key,
                                  std::string_view upload_id) {
    std::string query;
    add_param(query, "uploadId", upload_id);
    auto req = object_request(ep, "POST", bucket, key, query);
    add_header(req, "Content-Type", "application/xml");
    return req;
}

request complete_multipart_upload(const endpoint& ep, std::string_view bucket, std::string_view key,
                                  std::string_view upload_id,
                                  std::span<const completed_part> parts) {
    auto req = complete_multipart_upload(ep, bucket, key, upload_id);
    req.body = complete_multipart_body(parts);
    return req;
}

std::string complete_multipart_body(std::span<const completed_part> parts) {
    std::string out = "<CompleteMultipartUpload xmlns=\"";
    out += s3_xmlns;
    out += "\">";
    for (const auto& p : parts) {
        out += "<Part><PartNumber>";
        out += std::to_string(p.number);
        out += "</PartNumber><ETag>";
        xml_escape(p.etag, out);
        out += "</ETag></Part>";
    }
    out += "</CompleteMultipartUpload>";
    return out;
}

request abort_multipart_upload(const endpoint& ep, std::string_view bucket, std::string_view key,
                               std::string_view upload_id) {
    std::string query;
    add_param(query, "uploadId", upload_id);
    return object_request(ep, "DELETE", bucket, key, query);
}

request head_bucket(const endpoint& ep, std::string_view bucket) {
    return bucket_request(ep, "HEAD", bucket);
}

request head_object(const endpoint& ep, std::string_view bucket, std::string_view key) {
    return object_request(ep, "HEAD", bucket, key);
}

request get_object(const endpoint& ep, std::string_view bucket, std::string_view key,
                   std::optional<byte_range> range) {
    auto req = object_request(ep, "GET", bucket, key);
    if (range) {
        std::string value = "bytes=" + std::to_string(range->first) + "-";
        if (range->last)
            value += std::to_string(*range->last);
        add_header(req, "Range", value);
    }
    return req;
}

request delete_object(const endpoint& ep, std::string_view bucket, std::string_view key) {
    return object_request(ep, "DELETE", bucket, key);
}

request list_objects_v2(const endpoint& ep, std::string_view bucket, std::string_view prefix,
                        std::string_view continuation_token, int max_keys,
                        std::string_view delimiter) {
    std::string query = "list-type=2";
    if (!continuation_token.empty())
        add_param(query, "continuation-token", continuation_token);
    if (!delimiter.empty())
        add_param(query, "delimiter", delimiter);
    add_param(query, "encoding-type", "url");
    if (max_keys > 0)
        add_param(query, "max-keys", std::to_string(max_keys));
    if (!prefix.empty())
        add_param(query, "prefix", prefix);
    return bucket_request(ep, "GET", bucket, query);
}

request list_multipart_uploads(const endpoint& ep, std::string_view bucket, std::string_view prefix,
                               std::string_view key_marker, std::string_view upload_id_marker) {
    std::string query = "uploads";
    add_param(query, "encoding-type", "url");
    if (!key_marker.empty())
        add_param(query, "key-marker", key_marker);
    if (!prefix.empty())
        add_param(query, "prefix", prefix);
    if (!upload_id_marker.empty())
        add_param(query, "upload-id-marker", upload_id_marker);
    return bucket_request(ep, "GET", bucket, query);
}

request create_bucket(const endpoint& ep, std::string_view bucket, std::string_view region) {
    auto req = bucket_request(ep, "PUT", bucket);
    if (!region.empty() && region != "us-east-1") {
        add_header(req, "Content-Type", "application/xml");
        req.body = "<CreateBucketConfiguration xmlns=\"";
        req.body += s3_xmlns;
        req.body += "\"><LocationConstraint>";
        xml_escape(region, req.body);
        req.body += "</LocationConstraint></CreateBucketConfiguration>";
    }
    return req;
}

// ---------------------------------------------------------------------------------------------
// Responses.

error_code parse_list_objects_v2(std::string_view xml, list_result& out, diagnostics& diag) {
    pugi::xml_document doc;
    pugi::xml_node root;
    if (auto ec = load_reply(xml, "ListObjectsV2", "ListBucketResult", doc, root, diag))
        return ec;
    list_result result;
    const bool encoded = url_encoded(root);
    auto decode = [&](std::string s) { return encoded ? form_decode(s) : s; };
    for (auto c = root.first_child(); c; c = c.next_sibling()) {
        if (c.type() != pugi::node_element)
            continue;
        const auto name = local_name(c);
        if (name == "Contents") {
            object_info o;
            const auto key = child(c, "Key");
            if (!key)
                return malformed(diag, "a ListObjectsV2 <Contents> entry has no <Key>");
            o.key = decode(key.text().as_string());
            o.etag = child_text(c, "ETag");
            const std::string size = child_text(c, "Size");
            const auto r = std::from_chars(size.data(), size.data() + size.size(), o.size);
            if (size.empty() || r.ec != std::errc{} || r.ptr != size.data() + size.size())
                return malformed(diag, "the ListObjectsV2 entry for key " + printable(o.key) +
                                           " has no valid <Size>");
            o.last_modified = child_text(c, "LastModified");
            o.storage_class = child_text(c, "StorageClass");
            result.contents.push_back(std::move(o));
        } else if (name == "CommonPrefixes") {
            result.common_prefixes.push_back(decode(child_text(c, "Prefix")));
        }
    }
    if (!read_bool(root, "IsTruncated", result.is_truncated))
        return malformed(diag,
                         "the ListObjectsV2 reply has an <IsTruncated> that is neither "
                         "true nor false");
    result.next_continuation_token = child_text(root, "NextContinuationToken");
    if (result.is_truncated && result.next_continuation_token.empty())
        return malformed(diag,
                         "the ListObjectsV2 reply is truncated but has no "
                         "<NextContinuationToken> to continue from");
    out = std::move(result);
    return {};
}

error_code parse_initiate_multipart(std::string_view xml, std::string& upload_id,
                                    diagnostics& diag) {
    pugi::xml_document doc;
    pugi::xml_node root;
    if (auto ec = load_reply(xml, "CreateMultipartUpload", "InitiateMultipartUploadResult", doc,
                             root, diag))
        return ec;
    std::string id = child_text(root, "UploadId");
    if (id.empty())
        return malformed(diag, "the CreateMultipartUpload reply has no <UploadId>");
    upload_id = std::move(id);
    return {};
}

error_code parse_complete_multipart(std::string_view xml, complete_result& out, s3_error_info& err,
                                    diagnostics& diag) {
    pugi::xml_document doc;
    const auto parsed =
        doc.load_buffer(xml.data(), xml.size(), pugi::parse_default | pugi::parse_ws_pcdata_single);
    if (parsed && doc.document_element() && local_name(doc.document_element()) == "Error") {
        const auto ec = parse_error_response(200, xml, err);
        diag.message = describe(err, "CompleteMultipartUpload", {});
        return ec;
    }
    pugi::xml_node root;
    if (auto ec = load_reply(xml, "CompleteMultipartUpload", "CompleteMultipartUploadResult", doc,
                             root, diag))
        return ec;
    complete_result result;
    result.location = child_text(root, "Location");
    result.bucket = child_text(root, "Bucket");
    result.key = child_text(root, "Key");
    // Ceph RGW answers with an empty <ETag></ETag>; the client asks HeadObject then. Only a
    // reply without the element at all is malformed.
    if (!root.child("ETag"))
        return malformed(diag, "the CompleteMultipartUpload reply has no <ETag>");
    result.etag = child_text(root, "ETag");
    out = std::move(result);
    return {};
}

error_code parse_list_multipart_uploads(std::string_view xml, list_uploads_result& out,
                                        diagnostics& diag) {
    pugi::xml_document doc;
    pugi::xml_node root;
    if (auto ec =
            load_reply(xml, "ListMultipartUploads", "ListMultipartUploadsResult", doc, root, diag))
        return ec;
    list_uploads_result result;
    const bool encoded = url_encoded(root);
    auto decode = [&](std::string s) { return encoded ? form_decode(s) : s; };
    for (auto c = root.first_child(); c; c = c.next_sibling()) {
        if (c.type() != pugi::node_element)
            continue;
        const auto name = local_name(c);
        if (name == "Upload") {
            upload_info u;
            const auto key = child(c, "Key");
            u.upload_id = child_text(c, "UploadId");
            if (!key || u.upload_id.empty())
                return malformed(diag,
                                 "a ListMultipartUploads <Upload> entry lacks its <Key> "
                                 "or <UploadId>");
            u.key = decode(key.text().as_string());
            u.initiated = child_text(c, "Initiated");
            result.uploads.push_back(std::move(u));
        } else if (name == "CommonPrefixes") {
            result.common_prefixes.push_back(decode(child_text(c, "Prefix")));
        }
    }
    if (!read_bool(root, "IsTruncated", result.is_truncated))
        return malformed(diag,
                         "the ListMultipartUploads reply has an <IsTruncated> that is "
                         "neither true nor false");
    result.next_key_marker = decode(child_text(root, "NextKeyMarker"));
    result.next_upload_id_marker = child_text(root, "NextUploadIdMarker");
    if (result.is_truncated && result.next_key_marker.empty() &&
        result.next_upload_id_marker.empty())
        return malformed(diag,
                         "the ListMultipartUploads reply is truncated but names no "
                         "marker to continue from");
    out = std::move(result);
    return {};
}

error_code parse_list_multipart_uploads(std::string_view xml, std::vector<upload_info>& out,
                                        diagnostics& diag) {
    list_uploads_result result;
    if (auto ec = parse_list_multipart_uploads(xml, result, diag))
        return ec;
    out = std::move(result.uploads);
    return {};
}

// ---------------------------------------------------------------------------------------------
// Hashes.

md5_digest md5(std::string_view data) {
    md5_digest out{};
    unsigned int len = 0;
    EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_md5(), nullptr);
    return out;
}

std::string to_base64(std::span<const unsigned char> bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3), '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                  static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string md5_base64(std::string_view body) {
    const auto d = md5(body);
    return to_base64(d);
}

std::string md5_hex(std::string_view body) {
    const auto d = md5(body);
    return http::to_hex(d);
}

std::string multipart_etag(std::span<const std::string> part_md5_hex) {
    if (part_md5_hex.empty())
        return {};
    std::string digests;
    digests.reserve(part_md5_hex.size() * 16);
    for (const auto& h : part_md5_hex) {
        if (h.size() != 32)
            return {};
        for (std::size_t i = 0; i < 32; i += 2) {
            if (!is_hex(h[i]) || !is_hex(h[i + 1]))
                return {};
            digests += static_cast<char>(hex_value(h[i]) * 16 + hex_value(h[i + 1]));
        }
    }
    return "\"" + md5_hex(digests) + "-" + std::to_string(part_md5_hex.size()) + "\"";
}

}  // namespace penne::s3
