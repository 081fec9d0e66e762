#pragma once
// The daemon's operations server (DESIGN §11): penne::http::server wired to the pipeline.
// /metrics renders the metrics registry, /ready asks pipeline::ready(), /status renders
// pipeline::status() as JSON (status_json below), /health answers while the process serves.
//
// Secrets: nothing here reads the configuration's URIs or keys. Error texts in /ready and
// /status come from the pipeline's diagnostics, which never hold secrets, and are passed
// through redact_uris_in() as well, so a URI with a password could not leak even if a
// diagnostic quoted one.
//
// Thread safety: listen() and start() once, from the thread that sets up the daemon;
// stop() from any thread. Handlers run on the server's strand while the pipeline runs on
// other strands; ready(), status() and the registry are safe for that.
//
// Lifetimes: the registry and the pipeline must outlive the server's run (until the
// io_context's run() returns after stop()).

#include "config_file.hpp"

#include <penne/error.hpp>
#include <penne/http/server.hpp>
#include <penne/metrics.hpp>
#include <penne/pipeline.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace penne::app {

// The /status document:
//   { "version": "1.0.0", "uptime_seconds": 12.5, "status": "running", "status_code": 1,
//     "ready": true, "ready_reason": "", "buffered_bytes": 0,
//     "scopes": [ { "id": "shop", "state": "streaming", "stream_open": true,
//                   "lag_seconds": 0.4, "last_durable_time": { "t": 1700000000, "i": 3,
//                   "utc": "2023-11-14T22:13:20Z" }, "checkpoint_age_seconds": 0.1,
//                   "events_received": 10, "events_written": 10, "objects_written": 1,
//                   "checkpoints_saved": 2, "buffered_bytes": 0, "open_batches": 0,
//                   "last_error": null, "last_error_time": null } ] }
// Unknown values (no lag yet, no error) are null.
std::string status_json(const pipeline_snapshot& snap, bool ready, const std::string& reason,
                        double uptime_seconds);

class ops_server {
public:
    // `started`: when the daemon started (the uptime in /status).
    ops_server(boost::asio::any_io_executor ex, const metrics_settings& settings,
               const metrics_registry& registry, const pipeline& pipe,
               std::chrono::steady_clock::time_point started);
    ~ops_server();
    ops_server(const ops_server&) = delete;
    ops_server& operator=(const ops_server&) = delete;

    // Binds and listens. penne::errc::invalid_config for an address that does not parse,
    // otherwise the system error (address in use, permission denied); the diagnostics
    // name the address and port.
    error_code listen(diagnostics& diag);
    // "127.0.0.1:9464" or "[::1]:9464", with the port actually bound (after listen()).
    std::string endpoint() const;
    std::uint16_t port() const noexcept;
    // Serves on the executor until stop(). `on_error` (may be empty) is called if serving
    // ends with an error (accepting failed for good).
    void start(std::function<void(const std::string&)> on_error);
    void stop();

private:
    boost::asio::any_io_executor ex_;
    std::string address_;
    std::unique_ptr<http::server> server_;
};

}  // namespace penne::app
