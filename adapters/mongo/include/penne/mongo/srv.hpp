#pragma once
// mongodb+srv:// seedlist discovery (the MongoDB "Initial DNS Seedlist Discovery" rules):
// the seeds are the targets of the SRV records of _<srvServiceName>._tcp.<host>, each of
// which must lie in the parent domain of <host>; one optional TXT record of <host> may set
// authSource, replicaSet and loadBalanced (options written in the URI win); srvMaxHosts > 0
// keeps that many seeds, chosen at random. parse_uri() already applied the URI-level rules
// (one host, no port, no directConnection, tls=true unless the URI says otherwise).
//
// The checks are pure functions; resolve_seedlist() runs the two DNS queries through the
// asynchronous DNS client (dns_client.hpp).
//
// Thread safety: pure functions and one coroutine that touches only its arguments.
// Cancellation: through the awaiting coroutine. Lifetimes: `uri` and `diag` must outlive
// resolve_seedlist().

#include <penne/error.hpp>
#include <penne/mongo/dns.hpp>
#include <penne/mongo/dns_client.hpp>
#include <penne/mongo/uri.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace penne::mongo {

// "_mongodb._tcp.cluster0.example.com" for host "cluster0.example.com".
std::string srv_query_name(const uri_info& uri);

// Checks that an SRV target lies in the parent domain of the URI's host (the host minus its
// first label): "db1.example.com" for "cluster0.example.com" passes, "db1.evil.com" fails.
error_code check_srv_target(std::string_view srv_host, std::string_view target, diagnostics& diag);

// Applies the TXT records of the URI's host (each one its character-strings joined) to `uri`.
// More than one record, an option other than authSource/replicaSet/loadBalanced, or
// loadBalanced=true (penne does not speak the load-balanced protocol) fail with
// client_errc::invalid_uri. Options the URI set itself are kept.
error_code apply_srv_txt(const std::vector<std::string>& records, uri_info& uri, diagnostics& diag);

// Turns SRV records into the seed list: targets checked, sorted by priority (then
// weight, descending) for a stable order, then at most srv_max_hosts of them picked at random
// (0: all). Fails when there are none or one is outside the parent domain.
error_code srv_seeds(const std::vector<dns::record>& srv_records, uri_info& uri,
                     std::uint32_t random_seed, diagnostics& diag);

// Resolves the seed list of `uri` (uri.srv_host must be set) through `dns`: SRV, then TXT,
// then fills uri.hosts and the TXT options. Errors say what to fix: NXDOMAIN names the SRV
// name, a timeout names the DNS server, a foreign target names both domains.
boost::asio::awaitable<error_code> resolve_seedlist(boost::asio::any_io_executor ex,
                                                    const dns_server_options& dns, uri_info& uri,
                                                    diagnostics& diag);

}  // namespace penne::mongo
