#include <penne/mongo/dns_client.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <random>

namespace penne::mongo {

namespace asio = boost::asio;
using asio::awaitable;
using namespace asio::experimental::awaitable_operators;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

std::string describe_query(std::string_view name, dns::rtype type, const host_port& server) {
    return "DNS " + std::string(dns::to_string(type)) + " query for " + std::string(name) +
           " (server " + server.to_string() + ")";
}

std::uint16_t random_id() {
    std::random_device rd;
    return static_cast<std::uint16_t>(rd() & 0xffff);
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

// One exchange over TCP: two-byte length prefix each way (RFC 1035 §4.2.2).
awaitable<error_code> tcp_exchange(asio::ip::tcp::endpoint server,
                                   const std::vector<std::uint8_t>& query,
                                   std::vector<std::uint8_t>& reply) {
    asio::ip::tcp::socket sock(co_await asio::this_coro::executor);
    auto [cec] = co_await sock.async_connect(server, use_tuple);
    if (cec)
        co_return cec;
    std::vector<std::uint8_t> framed;
    framed.push_back(static_cast<std::uint8_t>(query.size() >> 8));
    framed.push_back(static_cast<std::uint8_t>(query.size() & 0xff));
    framed.insert(framed.end(), query.begin(), query.end());
    auto [wec, wn] = co_await asio::async_write(sock, asio::buffer(framed), use_tuple);
    if (wec)
        co_return wec;
    std::array<std::uint8_t, 2> len{};
    auto [lec, ln] = co_await asio::async_read(sock, asio::buffer(len), use_tuple);
    if (lec)
        co_return lec;
    reply.resize(static_cast<std::size_t>((len[0] << 8) | len[1]));
    auto [rec, rn] = co_await asio::async_read(sock, asio::buffer(reply), use_tuple);
    co_return rec;
}

}  // namespace

error_code parse_dns_server(std::string_view text, host_port& out, diagnostics& diag) {
    auto hp = host_port::parse(trim(text));
    if (!hp) {
        diag.message = "DNS server '" + std::string(text) +
                       "' is not an address like 127.0.0.1:5353 or [::1]:53";
        return make_error_code(penne::errc::invalid_config);
    }
    if (text.find(':') == std::string_view::npos ||
        (text.front() == '[' && text.find("]:") == std::string_view::npos))
        hp->port = 53;
    error_code aec;
    asio::ip::make_address(hp->host, aec);
    if (aec) {
        diag.message = "DNS server '" + std::string(text) + "' must be an IP address, not a name";
        return make_error_code(penne::errc::invalid_config);
    }
    out = std::move(*hp);
    return {};
}

std::optional<host_port> parse_resolv_conf(std::string_view text) {
    while (!text.empty()) {
        auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        if (auto hash = line.find_first_of("#;"); hash != std::string_view::npos)
            line = line.substr(0, hash);
        line = trim(line);
        constexpr std::string_view keyword = "nameserver";
        if (line.substr(0, keyword.size()) != keyword || line.size() == keyword.size() ||
            (line[keyword.size()] != ' ' && line[keyword.size()] != '\t'))
            continue;
        std::string_view value = trim(line.substr(keyword.size()));
        if (auto space = value.find_first_of(" \t"); space != std::string_view::npos)
            value = value.substr(0, space);
        if (value.find('%') != std::string_view::npos)
            continue;  // a link-local address scoped to an interface
        error_code aec;
        auto address = asio::ip::make_address(std::string(value), aec);
        if (aec)
            continue;
        return host_port{address.to_string(), 53};
    }
    return std::nullopt;
}

awaitable<error_code> dns_query(asio::any_io_executor ex, const dns_server_options& opts,
                                std::string name, dns::rtype type, dns::message& out,
                                diagnostics& diag) {
    const std::string what = describe_query(name, type, opts.server);
    if (opts.server.host.empty()) {
        diag.message = what + ": no DNS server configured";
        co_return make_error_code(dns::dns_errc::no_server);
    }
    error_code aec;
    const auto address = asio::ip::make_address(opts.server.host, aec);
    if (aec) {
        diag.message = what + ": the DNS server must be an IP address";
        co_return make_error_code(dns::dns_errc::no_server);
    }
    const std::uint16_t id = random_id();
    std::vector<std::uint8_t> query;
    if (auto ec = dns::encode_query(name, type, id, query)) {
        diag.message = what + ": " + ec.message();
        co_return ec;
    }

    const asio::ip::udp::endpoint server(address, opts.server.port);
    asio::ip::udp::socket sock(ex);
    error_code oec;
    sock.open(server.protocol(), oec);
    if (oec) {
        diag.message = what + ": cannot open a UDP socket: " + oec.message();
        co_return oec;
    }
    // Larger than any classic reply, so an oversized datagram from a lenient server is
    // still read whole.
    std::vector<std::uint8_t> buf(4096);
    asio::steady_timer timer(ex);
    bool truncated = false;
    const int attempts = std::max(1, opts.attempts);
    for (int attempt = 0; attempt < attempts && !truncated; ++attempt) {
        auto [sec, sn] = co_await sock.async_send_to(asio::buffer(query), server, use_tuple);
        if (sec) {
            diag.message = what + ": " + sec.message();
            co_return sec;
        }
        timer.expires_after(opts.timeout);
        for (;;) {
            asio::ip::udp::endpoint sender;
            auto result = co_await (sock.async_receive_from(asio::buffer(buf), sender, use_tuple) ||
                                    timer.async_wait(use_tuple));
            if (result.index() == 1) {
                auto [tec] = std::get<1>(result);
                if (tec) {
                    diag.message = what + ": cancelled";
                    co_return make_error_code(penne::errc::cancelled);
                }
                break;  // this attempt timed out
            }
            auto [rec, n] = std::get<0>(result);
            if (rec == asio::error::operation_aborted)
                co_return rec;
            // ICMP port unreachable surfaces as connection_refused on some systems: the
            // server is not listening, which a retry will not fix quickly.
            if (rec) {
                diag.message = what + ": " + rec.message();
                co_return rec;
            }
            // Datagrams from elsewhere, unreadable ones and answers to other queries are
            // ignored: an off-path spoofer must not be able to end the query.
            if (sender != server)
                continue;
            dns::message m;
            auto dec = dns::decode_message(std::span(buf.data(), n), m);
            if (dec)
                continue;
            auto cec = dns::check_reply(m, id, name, type);
            if (cec == dns::dns_errc::not_a_response || cec == dns::dns_errc::id_mismatch ||
                cec == dns::dns_errc::question_mismatch)
                continue;
            if (m.header.truncated) {
                truncated = true;
                break;
            }
            out = std::move(m);
            if (cec)
                diag.message = what + ": " + cec.message();
            co_return cec;
        }
    }
    if (!truncated) {
        diag.message = what + " timed out (" + std::to_string(attempts) + " attempts of " +
                       std::to_string(opts.timeout.count()) +
                       " ms): check that the DNS server is reachable";
        co_return make_error_code(penne::errc::timeout);
    }

    // The answer does not fit in a datagram: ask again over TCP.
    std::vector<std::uint8_t> reply;
    timer.expires_after(opts.timeout);
    auto result =
        co_await (tcp_exchange(asio::ip::tcp::endpoint(address, opts.server.port), query, reply) ||
                  timer.async_wait(use_tuple));
    if (result.index() == 1) {
        auto [tec] = std::get<1>(result);
        diag.message = what + (tec ? std::string(": cancelled") : " over TCP timed out");
        co_return make_error_code(tec ? penne::errc::cancelled : penne::errc::timeout);
    }
    if (auto tec = std::get<0>(result)) {
        diag.message = what + " over TCP (the UDP reply was truncated): " + tec.message();
        co_return tec;
    }
    dns::message m;
    auto dec = dns::decode_message(reply, m);
    if (!dec)
        dec = dns::check_reply(m, id, name, type);
    if (!dec && m.header.truncated)
        dec = make_error_code(dns::dns_errc::truncated);
    out = std::move(m);
    if (dec)
        diag.message = what + " over TCP: " + dec.message();
    co_return dec;
}

awaitable<error_code> dns_resolve_host(asio::any_io_executor ex, const dns_server_options& opts,
                                       std::string host, std::vector<std::string>& addresses,
                                       diagnostics& diag) {
    addresses.clear();
    for (dns::rtype type : {dns::rtype::a, dns::rtype::aaaa}) {
        dns::message m;
        diagnostics d;
        error_code ec = co_await dns_query(ex, opts, host, type, m, d);
        if (ec) {
            // A name without AAAA records may answer that query with an error on some
            // servers; what A found is enough.
            if (type == dns::rtype::aaaa && !addresses.empty())
                break;
            diag.message = d.message;
            co_return ec;
        }
        for (const dns::record* r : dns::answers_for(m, host, type)) {
            if (type == dns::rtype::a) {
                asio::ip::address_v4::bytes_type b;
                std::copy_n(r->address.begin(), 4, b.begin());
                addresses.push_back(asio::ip::address_v4(b).to_string());
            } else {
                addresses.push_back(asio::ip::address_v6(r->address).to_string());
            }
        }
    }
    if (addresses.empty()) {
        diag.message = "DNS name " + host + " has no A or AAAA record (server " +
                       opts.server.to_string() + ")";
        co_return make_error_code(dns::dns_errc::no_answer);
    }
    co_return error_code{};
}

}  // namespace penne::mongo
