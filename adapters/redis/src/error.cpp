#include <penne/redis/error.hpp>

namespace penne::redis {
namespace {

class redis_category_impl final : public classified_category {
public:
    const char* name() const noexcept override { return "penne.redis"; }
    std::string message(int ev) const override {
        switch (static_cast<redis_errc>(ev)) {
            case redis_errc::server_error:
                return "Redis error reply";
            case redis_errc::wrong_type:
                return "Redis key holds a value of the wrong type";
            case redis_errc::no_script:
                return "Redis does not know the script";
            case redis_errc::loading:
                return "Redis is loading its dataset";
            case redis_errc::busy:
                return "Redis is busy running a script";
            case redis_errc::try_again:
                return "Redis asks to try again";
            case redis_errc::read_only:
                return "Redis server is a read-only replica";
            case redis_errc::master_down:
                return "Redis replica lost its master";
            case redis_errc::cluster_down:
                return "Redis cluster is down";
            case redis_errc::out_of_memory:
                return "Redis is out of memory (maxmemory)";
            case redis_errc::max_clients:
                return "Redis has too many clients";
            case redis_errc::wrong_password:
                return "Redis rejected the user name or password";
            case redis_errc::no_auth:
                return "Redis requires authentication";
            case redis_errc::no_permission:
                return "Redis ACL user lacks a permission";
            case redis_errc::invalid_url:
                return "invalid Redis URL";
            case redis_errc::unexpected_reply:
                return "unexpected Redis reply";
            case redis_errc::connection_closed:
                return "Redis closed the connection";
            case redis_errc::tls_handshake:
                return "TLS handshake with Redis failed";
            case redis_errc::tls_setup:
                return "TLS setup for Redis failed";
            case redis_errc::not_connected:
                return "not connected to Redis";
            case redis_errc::store_lost:
                return "Redis lost penne's state";
        }
        return "unknown penne.redis error";
    }
    bool retryable(int ev) const noexcept override {
        switch (static_cast<redis_errc>(ev)) {
            case redis_errc::loading:
            case redis_errc::busy:
            case redis_errc::try_again:
            case redis_errc::read_only:
            case redis_errc::master_down:
            case redis_errc::cluster_down:
            case redis_errc::out_of_memory:
            case redis_errc::max_clients:
            case redis_errc::connection_closed:
            case redis_errc::not_connected:
                return true;
            default:
                return false;
        }
    }
};

}  // namespace

const penne::classified_category& error_category() noexcept {
    static const redis_category_impl cat;
    return cat;
}

redis_errc classify_error_reply(std::string_view text) noexcept {
    const auto space = text.find(' ');
    const std::string_view prefix = text.substr(0, space);
    struct mapping {
        std::string_view prefix;
        redis_errc code;
    };
    static constexpr mapping by_prefix[] = {
        {"WRONGTYPE", redis_errc::wrong_type},   {"NOSCRIPT", redis_errc::no_script},
        {"LOADING", redis_errc::loading},        {"BUSY", redis_errc::busy},
        {"TRYAGAIN", redis_errc::try_again},     {"READONLY", redis_errc::read_only},
        {"MASTERDOWN", redis_errc::master_down}, {"CLUSTERDOWN", redis_errc::cluster_down},
        {"OOM", redis_errc::out_of_memory},      {"WRONGPASS", redis_errc::wrong_password},
        {"NOAUTH", redis_errc::no_auth},         {"NOPERM", redis_errc::no_permission},
    };
    for (const auto& m : by_prefix) {
        if (prefix == m.prefix)
            return m.code;
    }
    // Two conditions that servers report under the generic ERR prefix.
    const std::string_view rest = space == std::string_view::npos ? "" : text.substr(space + 1);
    if (prefix == "ERR" && rest.starts_with("max number of clients reached"))
        return redis_errc::max_clients;
    if (prefix == "ERR" && rest.starts_with("invalid password"))  // Redis before 6
        return redis_errc::wrong_password;
    return redis_errc::server_error;
}

}  // namespace penne::redis
