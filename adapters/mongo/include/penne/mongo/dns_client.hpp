#pragma once
// The Asio driver of the DNS codec (dns.hpp): one query to one DNS server over UDP, with a
// timeout per attempt and retries, and again over TCP when the UDP reply is truncated. It
// never blocks the io_context thread (unlike getaddrinfo/res_query), which is why
// mongodb+srv:// uses it for its SRV and TXT lookups.
//
// The server address comes from configuration: `[mongodb] dns_server`, or the first
// nameserver of /etc/resolv.conf, which the daemon (app/, the only place that reads files)
// reads and hands in; parse_resolv_conf() is the pure parser it uses.
//
// Thread safety: none; run each query from one strand. Cancellation: through the awaiting
// coroutine (the socket closes, the query completes with operation_aborted or
// penne::errc::cancelled). Lifetimes: arguments are copied or used before the first
// suspension point is left, except `out` and `diag`, which must outlive the query.

#include <penne/error.hpp>
#include <penne/mongo/dns.hpp>
#include <penne/mongo/uri.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace penne::mongo {

struct dns_server_options {
    host_port server{"", 53};                  // an IP address literal and port
    std::chrono::milliseconds timeout{2'000};  // per attempt
    int attempts = 3;                          // UDP sends before giving up
};

// Parses "ip", "ip:port" or "[ipv6]:port" (port 53 by default). The host must be an IP
// address literal (a DNS server cannot be found by name). Diagnostics say what is wrong.
error_code parse_dns_server(std::string_view text, host_port& out, diagnostics& diag);

// The first usable `nameserver` line of resolv.conf text (comments and other keywords are
// skipped; a scoped IPv6 address "fe80::1%eth0" is not usable from here and skipped).
std::optional<host_port> parse_resolv_conf(std::string_view text);

// Queries `name` for `type`. Success means a well-formed reply to this query with rcode 0
// (possibly without a record of the type: see dns::answers_for). Errors: dns::dns_errc
// (name_error for NXDOMAIN, server_failure, refused …), penne::errc::timeout after every
// attempt timed out, socket errors from Asio. Diagnostics name the query and the server.
boost::asio::awaitable<error_code> dns_query(boost::asio::any_io_executor ex,
                                             const dns_server_options& opts, std::string name,
                                             dns::rtype type, dns::message& out, diagnostics& diag);

// The IPv4 and IPv6 addresses of `host` (A and AAAA, CNAMEs followed) through the DNS
// server, as text. Fails with dns_errc::no_answer when the name has neither.
boost::asio::awaitable<error_code> dns_resolve_host(boost::asio::any_io_executor ex,
                                                    const dns_server_options& opts,
                                                    std::string host,
                                                    std::vector<std::string>& addresses,
                                                    diagnostics& diag);

}  // namespace penne::mongo
