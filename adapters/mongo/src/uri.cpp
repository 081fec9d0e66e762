#include <penne/mongo/error.hpp>
#include <penne/mongo/uri.hpp>

#include <mongoc/mongoc.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <memory>
#include <vector>

namespace penne::mongo {
namespace {

struct uri_deleter {
    void operator()(mongoc_uri_t* u) const noexcept { mongoc_uri_destroy(u); }
};

// The raw (still percent-encoded) password of `uri`, located the way redact_uri does.
std::pair<std::size_t, std::size_t> password_span(std::string_view uri) {
    auto scheme = uri.find("://");
    if (scheme == std::string_view::npos)
        return {0, 0};
    std::size_t start = scheme + 3;
    auto at = uri.rfind('@');
    if (at == std::string_view::npos || at < start)
        return {0, 0};
    auto colon = uri.find(':', start);
    if (colon == std::string_view::npos || colon > at)
        return {0, 0};
    return {colon + 1, at - colon - 1};
}

// Query options whose value is a secret, lower case.
constexpr std::string_view secret_options[] = {"tlscertificatekeyfilepassword",
                                               "sslclientcertificatekeypassword"};

bool starts_with_nocase(std::string_view text, std::string_view lower_prefix) {
    return text.size() >= lower_prefix.size() &&
           std::equal(lower_prefix.begin(), lower_prefix.end(), text.begin(), [](char p, char c) {
               return p == std::tolower(static_cast<unsigned char>(c));
           });
}

// Where the userinfo password and the values of secret query options sit in `uri`, in
// increasing order (all still percent-encoded). Every "?", "&" or ";" followed by a secret
// option's name and "=" counts, wherever it is, so an odd layout redacts more, not less.
std::vector<std::pair<std::size_t, std::size_t>> secret_spans(std::string_view uri) {
    std::vector<std::pair<std::size_t, std::size_t>> spans;
    auto user = password_span(uri);
    if (user.second > 0)
        spans.push_back(user);
    for (auto sep = uri.find_first_of("?&;"); sep != std::string_view::npos;
         sep = uri.find_first_of("?&;", sep + 1)) {
        auto rest = uri.substr(sep + 1);
        for (std::string_view key : secret_options) {
            if (starts_with_nocase(rest, key) && rest.size() > key.size() &&
                rest[key.size()] == '=') {
                std::size_t start = sep + 1 + key.size() + 1;
                std::size_t end = uri.find_first_of("&;", start);
                if (end == std::string_view::npos)
                    end = uri.size();
                // Inside the userinfo password already: that span covers it.
                bool covered =
                    user.second > 0 && start >= user.first && start < user.first + user.second;
                if (end > start && !covered)
                    spans.emplace_back(start, end - start);
            }
        }
    }
    // Sorted and merged, so replacing from the right never shifts a later span.
    std::sort(spans.begin(), spans.end());
    std::vector<std::pair<std::size_t, std::size_t>> merged;
    for (auto [pos, len] : spans) {
        if (!merged.empty() && pos <= merged.back().first + merged.back().second) {
            auto& last = merged.back();
            last.second = std::max(last.first + last.second, pos + len) - last.first;
        } else {
            merged.emplace_back(pos, len);
        }
    }
    return merged;
}

void scrub(std::string& text, std::string_view secret) {
    if (secret.empty())
        return;
    for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + 3)) {
        text.replace(pos, secret.size(), "***");
    }
}

error_code fail(diagnostics& diag, std::string message) {
    diag.message = std::move(message);
    return make_error_code(client_errc::invalid_uri);
}

}  // namespace

std::string host_port::to_string() const {
    if (host.find(':') != std::string::npos)
        return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

std::optional<host_port> host_port::parse(std::string_view s) {
    host_port hp;
    std::string_view port_text;
    if (!s.empty() && s.front() == '[') {
        auto close = s.find(']');
        if (close == std::string_view::npos)
            return std::nullopt;
        hp.host = std::string(s.substr(1, close - 1));
        auto rest = s.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':')
                return std::nullopt;
            port_text = rest.substr(1);
        }
    } else {
        auto colon = s.rfind(':');
        if (colon != std::string_view::npos) {
            if (s.find(':') != colon)
                return std::nullopt;  // bare IPv6 needs brackets
            port_text = s.substr(colon + 1);
            s = s.substr(0, colon);
        }
        hp.host = std::string(s);
    }
    if (hp.host.empty())
        return std::nullopt;
    if (!port_text.empty()) {
        unsigned v = 0;
        auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), v);
        if (ec != std::errc{} || p != port_text.data() + port_text.size() || v == 0 || v > 65535)
            return std::nullopt;
        hp.port = static_cast<std::uint16_t>(v);
    }
    return hp;
}

std::string redact_uri(std::string_view uri) {
    auto spans = secret_spans(uri);
    std::string out(uri);
    // From the right, so earlier positions stay valid.
    for (auto it = spans.rbegin(); it != spans.rend(); ++it)
        out.replace(it->first, it->second, "***");
    return out;
}

std::string_view to_string(read_mode m) noexcept {
    switch (m) {
        case read_mode::primary:
            return "primary";
        case read_mode::primary_preferred:
            return "primaryPreferred";
        case read_mode::secondary:
            return "secondary";
        case read_mode::secondary_preferred:
            return "secondaryPreferred";
        case read_mode::nearest:
            return "nearest";
    }
    return "primary";
}

error_code parse_uri(std::string_view uri, uri_info& out, diagnostics& diag) {
    out = uri_info{};
    out.redacted = redact_uri(uri);
    const auto spans = secret_spans(uri);

    std::string text(uri);
    bson_error_t err{};
    std::unique_ptr<mongoc_uri_t, uri_deleter> u(mongoc_uri_new_with_error(text.c_str(), &err));
    if (!u) {
        std::string msg = err.message;
        for (auto [pos, len] : spans)
            scrub(msg, uri.substr(pos, len));
        return fail(diag, "invalid MongoDB URI " + out.redacted + ": " + msg);
    }
    // libmongoc already refused ports, several hosts, directConnection and srvMaxHosts
    // beside replicaSet in +srv URIs.
    if (const char* srv = mongoc_uri_get_srv_hostname(u.get())) {
        out.srv_host = srv;
        if (const char* svc = mongoc_uri_get_srv_service_name(u.get()))
            out.srv_service_name = svc;
        out.srv_max_hosts = mongoc_uri_get_option_as_int32(u.get(), MONGOC_URI_SRVMAXHOSTS, 0);
        if (out.srv_max_hosts < 0)
            return fail(diag, "srvMaxHosts must not be negative: " + out.redacted);
    }
    if (mongoc_uri_get_option_as_bool(u.get(), MONGOC_URI_LOADBALANCED, false)) {
        return fail(diag,
                    "loadBalanced=true is not supported (penne connects to replica sets and "
                    "standalone servers): " +
                        out.redacted);
    }
    // libmongoc keeps authSource with the credentials and reports "admin" when it is
    // absent, so look for the key itself among the query options.
    if (auto q = uri.find('?'); q != std::string_view::npos) {
        for (auto sep = q; sep != std::string_view::npos; sep = uri.find_first_of("&;", sep + 1)) {
            if (starts_with_nocase(uri.substr(sep + 1), "authsource="))
                out.auth_source_in_uri = true;
        }
    }
    if (mongoc_uri_get_tls(u.get())) {
        // libmongoc maps the ssl* spellings onto the tls* names and refuses tlsInsecure
        // beside the options it implies.
        tls_options t;
        const mongoc_uri_t* uu = u.get();
        if (const char* ca = mongoc_uri_get_option_as_utf8(uu, MONGOC_URI_TLSCAFILE, nullptr))
            t.ca_file = ca;
        if (const char* cert =
                mongoc_uri_get_option_as_utf8(uu, MONGOC_URI_TLSCERTIFICATEKEYFILE, nullptr))
            t.certificate_key_file = cert;
        if (const char* pw = mongoc_uri_get_option_as_utf8(
                uu, MONGOC_URI_TLSCERTIFICATEKEYFILEPASSWORD, nullptr))
            t.certificate_key_password = pw;
        const bool insecure = mongoc_uri_get_option_as_bool(uu, MONGOC_URI_TLSINSECURE, false);
        t.allow_invalid_certificates =
            insecure ||
            mongoc_uri_get_option_as_bool(uu, MONGOC_URI_TLSALLOWINVALIDCERTIFICATES, false);
        t.allow_invalid_hostnames = insecure || mongoc_uri_get_option_as_bool(
                                                    uu, MONGOC_URI_TLSALLOWINVALIDHOSTNAMES, false);
        if (!t.certificate_key_password.empty() && t.certificate_key_file.empty()) {
            return fail(
                diag, "tlsCertificateKeyFilePassword needs tlsCertificateKeyFile: " + out.redacted);
        }
        out.tls = std::move(t);
    }
    for (const mongoc_host_list_t* h = mongoc_uri_get_hosts(u.get()); h; h = h->next) {
        if (h->family == AF_UNIX) {
            return fail(diag, "Unix domain socket hosts are not supported: " + out.redacted);
        }
        out.hosts.push_back({h->host, h->port});
    }
    if (out.hosts.empty() && out.srv_host.empty())
        return fail(diag, "MongoDB URI names no host: " + out.redacted);
    if (const char* rs = mongoc_uri_get_replica_set(u.get()))
        out.replica_set = rs;
    out.direct_connection =
        mongoc_uri_get_option_as_bool(u.get(), MONGOC_URI_DIRECTCONNECTION, false);
    // libmongoc refuses values under 500 ms when it parses the URI.
    out.heartbeat_frequency = std::chrono::milliseconds(
        mongoc_uri_get_option_as_int32(u.get(), MONGOC_URI_HEARTBEATFREQUENCYMS, 10'000));
    if (out.direct_connection && out.hosts.size() > 1) {
        return fail(diag, "directConnection=true requires exactly one host: " + out.redacted);
    }
    if (const mongoc_read_prefs_t* rp = mongoc_uri_get_read_prefs_t(u.get())) {
        switch (mongoc_read_prefs_get_mode(rp)) {
            case MONGOC_READ_PRIMARY:
                out.read_preference = read_mode::primary;
                break;
            case MONGOC_READ_PRIMARY_PREFERRED:
                out.read_preference = read_mode::primary_preferred;
                break;
            case MONGOC_READ_SECONDARY:
                out.read_preference = read_mode::secondary;
                break;
            case MONGOC_READ_SECONDARY_PREFERRED:
                out.read_preference = read_mode::secondary_preferred;
                break;
            case MONGOC_READ_NEAREST:
                out.read_preference = read_mode::nearest;
                break;
        }
        const bson_t* tags = mongoc_read_prefs_get_tags(rp);
        if (tags != nullptr && !bson_empty(tags)) {
            return fail(diag, "readPreferenceTags are not supported: " + out.redacted);
        }
        if (mongoc_read_prefs_get_max_staleness_seconds(rp) != MONGOC_NO_MAX_STALENESS) {
            return fail(diag, "maxStalenessSeconds is not supported: " + out.redacted);
        }
    }
    if (const char* app = mongoc_uri_get_appname(u.get()))
        out.app_name = app;
    if (const bson_t* comp = mongoc_uri_get_compressors(u.get())) {
        // libmongoc keeps the names as keys, in the URI's order, minus those it lacks.
        bson_iter_t it;
        if (bson_iter_init(&it, comp)) {
            while (bson_iter_next(&it)) {
                std::string name(bson_iter_key(&it), bson_iter_key_len(&it));
                if (name == "zstd" || name == "zlib" || name == "snappy")
                    out.compressors.push_back(std::move(name));
            }
        }
    }
    // libmongoc already refused values outside -1..9.
    out.zlib_level = mongoc_uri_get_option_as_int32(u.get(), MONGOC_URI_ZLIBCOMPRESSIONLEVEL, -1);

    const char* user = mongoc_uri_get_username(u.get());
    const char* mech = mongoc_uri_get_auth_mechanism(u.get());
    if (user || mech) {
        credentials c;
        if (user)
            c.username = user;
        if (const char* pw = mongoc_uri_get_password(u.get()))
            c.password = pw;
        if (mech)
            c.mechanism = mech;
        const char* src = mongoc_uri_get_auth_source(u.get());
        c.source = src ? src : "admin";
        if (!c.mechanism.empty() && c.mechanism != "SCRAM-SHA-256" &&
            c.mechanism != "SCRAM-SHA-1") {
            diag.message = "authMechanism " + c.mechanism +
                           " is not supported (use SCRAM-SHA-256 or SCRAM-SHA-1): " + out.redacted;
            return make_error_code(client_errc::unsupported_auth);
        }
        if (c.username.empty()) {
            return fail(diag, "SCRAM authentication needs a username: " + out.redacted);
        }
        out.auth = std::move(c);
    }
    return {};
}

}  // namespace penne::mongo
