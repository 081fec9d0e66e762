#pragma once
// The MongoDB connection string, parsed by libmongoc's mongoc_uri_t (so penne accepts
// exactly what the C driver accepts) and reduced to what penne uses: seeds, replica set
// name, directConnection, readPreference, appName, credentials, compressors and TLS.
//
// The passwords (userinfo, tlsCertificateKeyFilePassword) live only in uri_info::auth and
// uri_info::tls; every text meant for humans (redacted, diagnostics) has them replaced by
// "***".
//
// Thread safety: plain values and pure functions.

#include <penne/error.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace penne::mongo {

struct host_port {
    std::string host;
    std::uint16_t port = 27017;

    std::string to_string() const;
    // Parses "host", "host:port" or "[v6addr]:port" (the form hello replies use).
    static std::optional<host_port> parse(std::string_view s);
    friend bool operator==(const host_port&, const host_port&) = default;
};

struct credentials {
    std::string username;
    std::string password;
    std::string source = "admin";  // authSource
    std::string mechanism;         // empty: negotiate SCRAM-SHA-256 / SCRAM-SHA-1
};

// tls=true / ssl=true and the tls* options (their legacy ssl* spellings included).
// Verification is on unless the URI relaxes it: the server's chain must lead to a trusted
// CA and its certificate must name the host penne dialled.
struct tls_options {
    std::string ca_file;  // tlsCAFile (PEM); empty: the system's trust store
    // tlsCertificateKeyFile: the client certificate and its private key in one PEM file,
    // for servers that require client certificates (mutual TLS).
    std::string certificate_key_file;
    std::string certificate_key_password;     // tlsCertificateKeyFilePassword (a secret)
    bool allow_invalid_certificates = false;  // tlsAllowInvalidCertificates, tlsInsecure
    bool allow_invalid_hostnames = false;     // tlsAllowInvalidHostnames, tlsInsecure
};

// readPreference=…: which replica set member a change stream reads from. Tag sets and
// maxStalenessSeconds are not supported (parse_uri refuses them).
enum class read_mode { primary, primary_preferred, secondary, secondary_preferred, nearest };
// The server's spelling ("primary", "primaryPreferred", …), as sent in $readPreference.
std::string_view to_string(read_mode m) noexcept;

struct uri_info {
    std::vector<host_port> hosts;
    // compressors=…: names in the URI's order of preference, restricted to those penne
    // speaks (zstd, zlib, snappy); unknown names are dropped, as libmongoc does.
    std::vector<std::string> compressors;
    int zlib_level = -1;  // zlibCompressionLevel (-1: zlib's default, 0-9)
    std::string replica_set;
    bool direct_connection = false;
    read_mode read_preference = read_mode::primary;
    // heartbeatFrequencyMS (500 ms or more): how often a change stream checks that the member
    // it reads from still satisfies the read preference (see change_stream).
    std::chrono::milliseconds heartbeat_frequency{10'000};
    std::string app_name;
    std::optional<credentials> auth;
    std::optional<tls_options> tls;  // set when the URI asks for TLS
    std::string redacted;            // the URI with the password replaced, for logs
    // mongodb+srv://: the host whose SRV records name the seeds (`hosts` stays empty until
    // resolve_seedlist() fills it; see srv.hpp), srvServiceName and srvMaxHosts (0: all).
    std::string srv_host;
    std::string srv_service_name = "mongodb";
    int srv_max_hosts = 0;
    bool auth_source_in_uri = false;  // authSource was written in the URI (a TXT one yields)
};

// Parses and checks that penne can honour the URI: mechanisms other than SCRAM and
// loadBalanced=true are refused with a message saying so. A mongodb+srv:// URI leaves
// `hosts` empty and sets `srv_host` (tls=true unless the URI says tls=false).
// Diagnostics never contain a password.
error_code parse_uri(std::string_view uri, uri_info& out, diagnostics& diag);

// The URI with the userinfo password and the value of tlsCertificateKeyFilePassword (or
// sslClientCertificateKeyPassword) replaced by "***". When in doubt (odd layouts) it
// redacts more, never less.
std::string redact_uri(std::string_view uri);

}  // namespace penne::mongo
