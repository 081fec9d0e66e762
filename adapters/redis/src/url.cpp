#include <penne/redis/connection.hpp>
#include <penne/redis/error.hpp>

#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

#include <charconv>

namespace penne::redis {

std::string endpoint::redacted() const {
    std::string out = tls ? "rediss://" : "redis://";
    if (!user.empty() || !password.empty()) {
        out += user;
        if (!password.empty())
            out += ":***";
        out += '@';
    }
    if (host.find(':') != std::string::npos)
        out += '[' + host + ']';
    else
        out += host;
    out += ':' + std::to_string(port) + '/' + std::to_string(db);
    return out;
}

error_code parse_url(std::string_view url, endpoint& out, diagnostics& diag) {
    auto fail = [&](std::string why) {
        diag.message = "invalid Redis URL: " + why;
        return make_error_code(redis_errc::invalid_url);
    };
    auto parsed = boost::urls::parse_uri(url);
    if (!parsed) {
        // The text may hold a password: describe the problem, not the input.
        return fail("not a URL of the form redis://[user:password@]host[:port][/db]");
    }
    const boost::urls::url_view u = *parsed;
    endpoint e;
    if (u.scheme() == "redis")
        e.tls = false;
    else if (u.scheme() == "rediss")
        e.tls = true;
    else
        return fail("scheme '" + std::string(u.scheme()) + "' is not redis or rediss");
    if (!u.has_authority() || u.encoded_host().empty())
        return fail("no host");
    if (u.host_type() == boost::urls::host_type::ipv6)
        e.host = u.host_address();  // without brackets
    else
        e.host = u.host();
    if (u.has_port()) {
        const std::string_view text = u.port();
        unsigned port = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
        if (ec != std::errc() || end != text.data() + text.size() || port == 0 || port > 65535)
            return fail("port '" + std::string(text) + "' is not a number from 1 to 65535");
        e.port = static_cast<std::uint16_t>(port);
    }
    if (u.has_userinfo()) {
        e.user = u.user();
        if (u.has_password())
            e.password = u.password();
        if (!u.has_password() && !e.user.empty()) {
            // "redis://secret@host": one field that many tools read as the password.
            e.password = std::move(e.user);
            e.user.clear();
        }
    }
    std::string_view path = u.encoded_path();
    if (!path.empty() && path != "/") {
        path.remove_prefix(path.front() == '/' ? 1 : 0);
        int db = -1;
        auto [end, ec] = std::from_chars(path.data(), path.data() + path.size(), db);
        if (ec != std::errc() || end != path.data() + path.size() || db < 0)
            return fail("database '" + std::string(path) + "' is not a non-negative number");
        e.db = db;
    }
    if (u.has_query() || u.has_fragment())
        return fail("query strings and fragments are not supported (use the config keys)");
    out = std::move(e);
    return {};
}

}  // namespace penne::redis
