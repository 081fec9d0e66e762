#pragma once
// Server selection for penne's single purpose: find the replica set's writable primary
// from the URI's seeds and hand back an open, handshaken connection to it. A seed that is
// a secondary points at the primary through `primary` in its hello reply; the set's other
// members (hello `hosts`) are tried when no seed knows.
//
// Thread safety: none; run from the caller's strand. Cancellation: through the awaiting
// coroutine; no connection is returned then.

#include <penne/mongo/connection.hpp>
#include <penne/mongo/uri.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <memory>

namespace penne::mongo {

// Connects to the primary (with directConnection=true: to the single host, whatever its
// role). Fails with client_errc::no_primary (retryable) when none is found; the
// diagnostics say what every server answered.
boost::asio::awaitable<error_code> connect_primary(boost::asio::any_io_executor ex,
                                                   const uri_info& uri,
                                                   const connection_options& opts,
                                                   std::unique_ptr<connection>& out,
                                                   diagnostics& diag);

}  // namespace penne::mongo
