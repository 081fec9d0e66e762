#pragma once
// The MongoDB connection string, parsed by libmongoc's mongoc_uri_t (so penne accepts
// exactly what the C driver accepts) and reduced to what penne uses: seeds, replica set
// name, directConnection, appName and credentials.
//
// The password lives only in uri_info::auth; every text meant for humans (redacted,
// diagnostics) has it replaced by "***".
//
// Thread safety: plain values and pure functions.

#include <penne/error.hpp>

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

struct uri_info {
    std::vector<host_port> hosts;
    // compressors=…: names in the URI's order of preference, restricted to those penne
    // speaks (zstd, zlib, snappy); unknown names are dropped, as libmongoc does.
    std::vector<std::string> compressors;
    int zlib_level = -1;  // zlibCompressionLevel (-1: zlib's default, 0-9)
    std::string replica_set;
    bool direct_connection = false;
    std::string app_name;
    std::optional<credentials> auth;
    std::string redacted;  // the URI with the password replaced, for logs
};

// Parses and checks that penne can honour the URI: TLS, mongodb+srv:// and mechanisms
// other than SCRAM are refused with a message saying so. Diagnostics never contain the
// password.
error_code parse_uri(std::string_view uri, uri_info& out, diagnostics& diag);

// The URI with the userinfo password replaced by "***". When in doubt (odd layouts) it
// redacts more, never less.
std::string redact_uri(std::string_view uri);

}  // namespace penne::mongo
