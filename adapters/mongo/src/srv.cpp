#include <penne/mongo/error.hpp>
#include <penne/mongo/srv.hpp>

#include <algorithm>
#include <cctype>
#include <random>

namespace penne::mongo {

namespace asio = boost::asio;
using asio::awaitable;

namespace {

error_code fail(diagnostics& diag, std::string message) {
    diag.message = std::move(message);
    return make_error_code(client_errc::invalid_uri);
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!out.empty() && out.back() == '.')
        out.pop_back();
    return out;
}

bool equals_nocase(std::string_view a, std::string_view b) {
    return lower(a) == lower(b);
}

}  // namespace

std::string srv_query_name(const uri_info& uri) {
    return "_" + uri.srv_service_name + "._tcp." + uri.srv_host;
}

error_code check_srv_target(std::string_view srv_host, std::string_view target, diagnostics& diag) {
    const std::string host = lower(srv_host);
    const std::string t = lower(target);
    const auto dot = host.find('.');
    // libmongoc refuses hosts with fewer than three labels, so a parent domain exists.
    const std::string parent = dot == std::string::npos ? host : host.substr(dot);
    if (t.size() <= parent.size() ||
        t.compare(t.size() - parent.size(), parent.size(), parent) != 0) {
        return fail(diag, "SRV record of " + std::string(srv_host) + " names host '" +
                              std::string(target) + "', which is not in the domain '" +
                              parent.substr(1) +
                              "': the DNS records must point at hosts of the URI's domain");
    }
    return {};
}

error_code apply_srv_txt(const std::vector<std::string>& records, uri_info& uri,
                         diagnostics& diag) {
    if (records.empty())
        return {};
    if (records.size() > 1) {
        return fail(diag, "the host " + uri.srv_host + " has " + std::to_string(records.size()) +
                              " TXT records; mongodb+srv:// allows at most one");
    }
    std::string_view text = records.front();
    while (!text.empty()) {
        auto amp = text.find('&');
        std::string_view pair = text.substr(0, amp);
        text = amp == std::string_view::npos ? std::string_view{} : text.substr(amp + 1);
        if (pair.empty())
            continue;
        auto eq = pair.find('=');
        if (eq == std::string_view::npos || eq == 0) {
            return fail(diag, "TXT record of " + uri.srv_host + ": '" + std::string(pair) +
                                  "' is not key=value");
        }
        const std::string key = lower(pair.substr(0, eq));
        const std::string value(pair.substr(eq + 1));
        if (key == "authsource") {
            if (value.empty())
                return fail(diag, "TXT record of " + uri.srv_host + ": authSource is empty");
            if (!uri.auth_source_in_uri && uri.auth)
                uri.auth->source = value;
        } else if (key == "replicaset") {
            if (uri.replica_set.empty())
                uri.replica_set = value;
        } else if (key == "loadbalanced") {
            if (equals_nocase(value, "true")) {
                return fail(diag, "TXT record of " + uri.srv_host +
                                      " sets loadBalanced=true, which penne does not support "
                                      "(it connects to replica sets)");
            }
            if (!equals_nocase(value, "false"))
                return fail(diag, "TXT record of " + uri.srv_host +
                                      ": loadBalanced must be "
                                      "true or false");
        } else {
            return fail(diag, "TXT record of " + uri.srv_host + " sets '" +
                                  std::string(pair.substr(0, eq)) +
                                  "'; only authSource, replicaSet and loadBalanced may come "
                                  "from DNS (put other options in the URI)");
        }
    }
    if (uri.srv_max_hosts > 0 && !uri.replica_set.empty()) {
        return fail(diag,
                    "srvMaxHosts cannot be combined with replicaSet (set by the TXT record "
                    "of " +
                        uri.srv_host + ")");
    }
    return {};
}

error_code srv_seeds(const std::vector<dns::record>& srv_records, uri_info& uri,
                     std::uint32_t random_seed, diagnostics& diag) {
    std::vector<const dns::record*> sorted;
    for (const auto& r : srv_records) {
        if (auto ec = check_srv_target(uri.srv_host, r.target, diag))
            return ec;
        sorted.push_back(&r);
    }
    if (sorted.empty()) {
        diag.message = "DNS name " + srv_query_name(uri) +
                       " has no SRV record: check the host in the mongodb+srv:// URI";
        return make_error_code(dns::dns_errc::no_answer);
    }
    std::stable_sort(sorted.begin(), sorted.end(), [](const auto* a, const auto* b) {
        return a->priority != b->priority ? a->priority < b->priority : a->weight > b->weight;
    });
    std::vector<host_port> hosts;
    for (const auto* r : sorted) {
        host_port hp{lower(r->target), r->port};
        if (std::find(hosts.begin(), hosts.end(), hp) == hosts.end())
            hosts.push_back(std::move(hp));
    }
    const auto max = static_cast<std::size_t>(uri.srv_max_hosts);
    if (max > 0 && hosts.size() > max) {
        std::mt19937 rng(random_seed);
        std::shuffle(hosts.begin(), hosts.end(), rng);
        hosts.resize(max);
    }
    uri.hosts = std::move(hosts);
    return {};
}

awaitable<error_code> resolve_seedlist(asio::any_io_executor ex, const dns_server_options& dns,
                                       uri_info& uri, diagnostics& diag) {
    const std::string srv_name = srv_query_name(uri);
    dns::message srv_reply;
    diagnostics d;
    error_code ec = co_await dns_query(ex, dns, srv_name, dns::rtype::srv, srv_reply, d);
    if (ec == dns::dns_errc::name_error) {
        diag.message = "DNS name " + srv_name + " does not exist (NXDOMAIN, server " +
                       dns.server.to_string() + "): check the host in the mongodb+srv:// URI (" +
                       uri.redacted + ")";
        co_return ec;
    }
    if (ec) {
        diag.message = d.message + " (for " + uri.redacted + ")";
        co_return ec;
    }
    std::vector<dns::record> srv_records;
    for (const dns::record* r : dns::answers_for(srv_reply, srv_name, dns::rtype::srv))
        srv_records.push_back(*r);

    dns::message txt_reply;
    d.clear();
    ec = co_await dns_query(ex, dns, uri.srv_host, dns::rtype::txt, txt_reply, d);
    std::vector<std::string> txt;
    // No TXT record is fine; a name that has SRV records but whose own name does not exist
    // is unusual but answers the same (no options).
    if (ec && ec != dns::dns_errc::name_error) {
        diag.message = d.message + " (for " + uri.redacted + ")";
        co_return ec;
    }
    if (!ec) {
        for (const dns::record* r : dns::answers_for(txt_reply, uri.srv_host, dns::rtype::txt)) {
            std::string joined;
            for (const auto& s : r->strings)
                joined += s;
            txt.push_back(std::move(joined));
        }
    }
    if (auto tec = apply_srv_txt(txt, uri, diag))
        co_return tec;
    std::random_device rd;
    if (auto sec = srv_seeds(srv_records, uri, rd(), diag))
        co_return sec;
    co_return error_code{};
}

}  // namespace penne::mongo
