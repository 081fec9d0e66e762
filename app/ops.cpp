#include "ops.hpp"

#include <penne/version.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <ctime>
#include <exception>

namespace penne::app {
namespace json = boost::json;

namespace {

std::string utc(std::int64_t seconds) {
    const std::time_t t = static_cast<std::time_t>(seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

json::value optional_seconds(const std::optional<double>& v) {
    if (!v)
        return nullptr;
    return *v;
}

}  // namespace

std::string status_json(const pipeline_snapshot& snap, bool ready, const std::string& reason,
                        double uptime_seconds) {
    static constexpr const char* names[] = {"stopped", "running", "degraded", "failed"};
    const auto code = static_cast<unsigned>(snap.status);
    json::object doc;
    doc["version"] = PENNE_VERSION_STRING;
    doc["uptime_seconds"] = uptime_seconds;
    doc["status"] = code < 4 ? names[code] : "unknown";
    doc["status_code"] = code;
    doc["ready"] = ready;
    doc["ready_reason"] = redact_uris_in(reason);
    doc["buffered_bytes"] = snap.buffered_bytes;
    if (!snap.lease_owner.empty())
        doc["lease_owner"] = snap.lease_owner;
    json::array scopes;
    for (const auto& s : snap.scopes) {
        json::object o;
        o["id"] = s.id;
        o["state"] = to_string(s.state);
        o["stream_open"] = s.stream_open;
        o["lag_seconds"] = optional_seconds(s.lag_seconds);
        if (s.last_durable_time) {
            json::object t;
            t["t"] = s.last_durable_time->seconds;
            t["i"] = s.last_durable_time->increment;
            t["utc"] = utc(s.last_durable_time->seconds);
            o["last_durable_time"] = std::move(t);
        } else {
            o["last_durable_time"] = nullptr;
        }
        o["checkpoint_age_seconds"] = optional_seconds(s.checkpoint_age_seconds);
        o["events_received"] = s.events_received;
        o["events_written"] = s.events_written;
        o["objects_written"] = s.objects_written;
        o["checkpoints_saved"] = s.checkpoints_saved;
        o["buffered_bytes"] = s.buffered_bytes;
        o["open_batches"] = s.open_batches;
        if (!snap.lease_owner.empty()) {
            o["lease_held"] = s.lease_held;
            o["lease_fence"] = s.lease_fence;
        }
        if (s.last_error.empty())
            o["last_error"] = nullptr;
        else
            o["last_error"] = redact_uris_in(s.last_error);
        if (s.last_error_time)
            o["last_error_time"] = utc(std::chrono::duration_cast<std::chrono::seconds>(
                                           s.last_error_time->time_since_epoch())
                                           .count());
        else
            o["last_error_time"] = nullptr;
        scopes.push_back(std::move(o));
    }
    doc["scopes"] = std::move(scopes);
    return json::serialize(doc);
}

ops_server::ops_server(boost::asio::any_io_executor ex, const metrics_settings& settings,
                       const metrics_registry& registry, const pipeline& pipe,
                       std::chrono::steady_clock::time_point started)
    : ex_(ex), address_(settings.address) {
    http::server_options opts;
    opts.address = settings.address;
    opts.port = settings.port;
    http::server_handlers h;
    h.metrics = [&registry](std::string& out) { registry.render(out); };
    h.ready = [&pipe] {
        http::readiness r;
        std::string reason;
        r.ready = pipe.ready(reason);
        r.reason = redact_uris_in(reason);
        return r;
    };
    h.status = [&pipe, started] {
        std::string reason;
        const bool ready = pipe.ready(reason);
        const double uptime =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        return status_json(pipe.status(), ready, reason, uptime);
    };
    server_ = std::make_unique<http::server>(ex, std::move(opts), std::move(h));
}

ops_server::~ops_server() = default;

error_code ops_server::listen(diagnostics& diag) {
    return server_->listen(diag);
}

std::uint16_t ops_server::port() const noexcept {
    return server_->port();
}

std::string ops_server::endpoint() const {
    const bool v6 = address_.find(':') != std::string::npos;
    return (v6 ? "[" + address_ + "]" : address_) + ":" + std::to_string(port());
}

void ops_server::start(std::function<void(const std::string&)> on_error) {
    boost::asio::co_spawn(ex_, server_->run(),
                          [on_error = std::move(on_error)](std::exception_ptr e, error_code ec) {
                              std::string what;
                              if (e) {
                                  try {
                                      std::rethrow_exception(e);
                                  } catch (const std::exception& ex) {
                                      what = ex.what();
                                  } catch (...) {
                                      what = "unknown exception";
                                  }
                              } else if (ec) {
                                  what = ec.message();
                              }
                              if (!what.empty() && on_error)
                                  on_error(what);
                          });
}

void ops_server::stop() {
    server_->stop();
}

}  // namespace penne::app
