#include <penne/mongo/topology.hpp>

#include <algorithm>
#include <chrono>
#include <deque>
#include <optional>

namespace penne::mongo {

namespace asio = boost::asio;

namespace {

struct candidate {
    std::unique_ptr<connection> conn;
    std::chrono::steady_clock::duration rtt{};
};

// The lowest round trip among `list` (which must not be empty).
std::unique_ptr<connection> take_nearest(std::vector<candidate>& list) {
    auto best = std::min_element(list.begin(), list.end(),
                                 [](const auto& a, const auto& b) { return a.rtt < b.rtt; });
    return std::move(best->conn);
}

}  // namespace

asio::awaitable<error_code> select_server(asio::any_io_executor ex, const uri_info& uri,
                                          read_mode mode, std::span<const host_port> known_members,
                                          const connection_options& opts,
                                          std::unique_ptr<connection>& out, diagnostics& diag) {
    out.reset();
    std::deque<host_port> queue(uri.hosts.begin(), uri.hosts.end());
    if (!uri.direct_connection)
        queue.insert(queue.end(), known_members.begin(), known_members.end());
    std::vector<host_port> tried;
    std::vector<candidate> primaries, secondaries;
    std::string report;
    auto note = [&report](const host_port& h, std::string_view what) {
        if (!report.empty())
            report += "; ";
        report += h.to_string();
        report += ": ";
        report += what;
    };
    // primary and primaryPreferred are done at the first primary; the other modes look at
    // every member to compare round trips.
    const bool primary_first = mode == read_mode::primary || mode == read_mode::primary_preferred;

    while (!queue.empty()) {
        host_port host = std::move(queue.front());
        queue.pop_front();
        if (std::find(tried.begin(), tried.end(), host) != tried.end())
            continue;
        tried.push_back(host);

        auto conn = std::make_unique<connection>(ex);
        diagnostics cdiag;
        const auto start = std::chrono::steady_clock::now();
        error_code ec = co_await conn->connect(host, opts, cdiag);
        const auto rtt = std::chrono::steady_clock::now() - start;
        if (ec) {
            if (!is_retryable(ec) && ec != penne::errc::timeout) {
                diag.message = cdiag.message;
                co_return ec;
            }
            note(host, cdiag.message);
            continue;
        }
        const hello_reply& h = conn->hello();
        if (uri.direct_connection) {
            out = std::move(conn);
            co_return error_code{};
        }
        if (!uri.replica_set.empty() && h.set_name != uri.replica_set) {
            note(host,
                 "belongs to replica set '" + h.set_name + "', not '" + uri.replica_set + "'");
            continue;
        }
        // The primary the member names goes first; the other members after the seeds.
        if (auto p = host_port::parse(h.primary); p && !h.writable_primary)
            queue.push_front(*p);
        for (const auto& member : h.hosts) {
            if (auto m = host_port::parse(member))
                queue.push_back(*m);
        }
        if (h.writable_primary) {
            if (primary_first) {
                out = std::move(conn);
                co_return error_code{};
            }
            primaries.push_back({std::move(conn), rtt});
        } else if (h.secondary) {
            secondaries.push_back({std::move(conn), rtt});
            note(host, "secondary");
        } else {
            note(host, h.primary.empty() ? "not primary, knows no primary"
                                         : "not primary, primary is " + h.primary);
        }
    }

    switch (mode) {
        case read_mode::primary:
            break;
        case read_mode::primary_preferred:
        case read_mode::secondary:
            if (!secondaries.empty())
                out = take_nearest(secondaries);
            break;
        case read_mode::secondary_preferred:
            if (!secondaries.empty())
                out = take_nearest(secondaries);
            else if (!primaries.empty())
                out = take_nearest(primaries);
            break;
        case read_mode::nearest:
            for (auto& p : primaries)
                secondaries.push_back(std::move(p));
            if (!secondaries.empty())
                out = take_nearest(secondaries);
            break;
    }
    // The connections not chosen close as the candidates go out of scope.
    if (out)
        co_return error_code{};
    diag.message = (mode == read_mode::primary
                        ? std::string("no writable MongoDB primary")
                        : "no MongoDB server for read preference " + std::string(to_string(mode))) +
                   " among " + std::to_string(tried.size()) + " server(s): " + report;
    co_return make_error_code(client_errc::no_primary);
}

asio::awaitable<error_code> connect_primary(asio::any_io_executor ex, const uri_info& uri,
                                            const connection_options& opts,
                                            std::unique_ptr<connection>& out, diagnostics& diag) {
    const std::span<const host_port> none;
    error_code ec = co_await select_server(ex, uri, read_mode::primary, none, opts, out, diag);
    co_return ec;
}

}  // namespace penne::mongo
