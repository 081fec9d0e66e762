#pragma once
// Server selection for penne's change streams: find the replica set member a read
// preference asks for (the writable primary by default) from the URI's seeds and hand back an
// open, handshaken connection to it. Discovery follows hello: a member names the set's
// `primary` (tried first) and its other `hosts` (tried after the seeds). Members learned in an
// earlier discovery can be passed as extra seeds, so rediscovery after a failover still works
// when the URI's seeds are down.
//
// Read preferences: primary (stop at the first writable primary), primaryPreferred (the
// primary, else the secondary with the lowest round trip), secondary (the secondary with the
// lowest round trip), secondaryPreferred (a secondary, else the primary), nearest (the data
// bearing member with the lowest round trip; the round trip is the connect + handshake time).
// directConnection=true: the single host, whatever its role.
//
// Thread safety: none; run from the caller's strand. Cancellation: through the awaiting
// coroutine; no connection is returned then.

#include <penne/mongo/connection.hpp>
#include <penne/mongo/uri.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <memory>
#include <span>

namespace penne::mongo {

// Connects to a member suited to `mode`. Fails with client_errc::no_primary (retryable)
// when no member qualifies; the diagnostics say what every server answered. Authentication
// and version problems stop the search at once (they are the same on every member).
boost::asio::awaitable<error_code> select_server(boost::asio::any_io_executor ex,
                                                 const uri_info& uri, read_mode mode,
                                                 std::span<const host_port> known_members,
                                                 const connection_options& opts,
                                                 std::unique_ptr<connection>& out,
                                                 diagnostics& diag);

// select_server for the primary from the URI's seeds alone.
boost::asio::awaitable<error_code> connect_primary(boost::asio::any_io_executor ex,
                                                   const uri_info& uri,
                                                   const connection_options& opts,
                                                   std::unique_ptr<connection>& out,
                                                   diagnostics& diag);

}  // namespace penne::mongo
