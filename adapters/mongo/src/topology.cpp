#include <penne/mongo/topology.hpp>

#include <algorithm>
#include <deque>

namespace penne::mongo {

namespace asio = boost::asio;

asio::awaitable<error_code> connect_primary(asio::any_io_executor ex, const uri_info& uri,
                                            const connection_options& opts,
                                            std::unique_ptr<connection>& out, diagnostics& diag) {
    out.reset();
    std::deque<host_port> queue(uri.hosts.begin(), uri.hosts.end());
    std::vector<host_port> tried;
    std::string report;
    auto note = [&report](const host_port& h, std::string_view what) {
        if (!report.empty())
            report += "; ";
        report += h.to_string();
        report += ": ";
        report += what;
    };

    while (!queue.empty()) {
        host_port host = std::move(queue.front());
        queue.pop_front();
        if (std::find(tried.begin(), tried.end(), host) != tried.end())
            continue;
        tried.push_back(host);

        auto conn = std::make_unique<connection>(ex);
        diagnostics cdiag;
        error_code ec = co_await conn->connect(host, opts, cdiag);
        if (ec) {
            // Authentication and version problems are the same on every member: stop.
            if (!is_retryable(ec) && ec != penne::errc::timeout) {
                diag.message = cdiag.message;
                co_return ec;
            }
            note(host, cdiag.message);
            continue;
        }
        const hello_reply& h = conn->hello();
        if (!uri.replica_set.empty() && !uri.direct_connection && h.set_name != uri.replica_set) {
            note(host,
                 "belongs to replica set '" + h.set_name + "', not '" + uri.replica_set + "'");
            continue;
        }
        if (uri.direct_connection || h.writable_primary) {
            out = std::move(conn);
            co_return error_code{};
        }
        note(host, h.primary.empty() ? "not primary, knows no primary"
                                     : "not primary, primary is " + h.primary);
        // The primary the member names goes first; the other members after the seeds.
        if (auto p = host_port::parse(h.primary))
            queue.push_front(*p);
        for (const auto& member : h.hosts) {
            if (auto m = host_port::parse(member))
                queue.push_back(*m);
        }
    }
    diag.message = "no writable MongoDB primary among " + std::to_string(tried.size()) +
                   " server(s): " + report;
    co_return make_error_code(client_errc::no_primary);
}

}  // namespace penne::mongo
