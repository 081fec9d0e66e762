// The providers that fetch credentials over HTTP through the injected fetcher: STS
// AssumeRoleWithWebIdentity (XML), ECS/EKS container credentials and EC2 IMDSv2 (JSON); their
// replies are parsed in credentials_replies.cpp. Every message names the endpoint and the HTTP
// status; none quotes a token, a secret or the body of a successful reply.
#include "credentials_detail.hpp"
#include "credentials_replies.hpp"

#include <utility>

namespace penne::s3 {

namespace asio = boost::asio;

namespace detail {

namespace {

constexpr std::chrono::milliseconds sts_timeout{5000};
constexpr std::chrono::milliseconds ecs_timeout{2000};

error_code fail(diagnostics& diag, credentials_errc e, std::string message) {
    diag.message = std::move(message);
    return make_error_code(e);
}

// 5xx and 429 are the service being busy; everything else is a refusal.
credentials_errc classify_status(unsigned status) {
    return status >= 500 || status == 429 ? credentials_errc::service_unavailable
                                          : credentials_errc::service_rejected;
}

struct url_parts {
    std::string scheme;  // lowercase
    std::string host;    // without brackets, lowercase
    std::string origin;  // scheme://authority, for messages (the path may be a capability)
};

bool split_url(std::string_view url, url_parts& out) {
    const auto sep = url.find("://");
    if (sep == std::string_view::npos)
        return false;
    out.scheme = lowercase(url.substr(0, sep));
    const auto rest = url.substr(sep + 3);
    const auto auth = rest.substr(0, rest.find_first_of("/?#"));
    if (auth.empty() || auth.find('@') != std::string_view::npos)
        return false;
    std::string_view host, port;
    if (auth[0] == '[') {
        const auto close = auth.find(']');
        if (close == std::string_view::npos)
            return false;
        host = auth.substr(1, close - 1);
        const auto after = auth.substr(close + 1);
        if (!after.empty()) {
            if (after[0] != ':')
                return false;
            port = after.substr(1);
        }
    } else {
        const auto colon = auth.find(':');
        host = auth.substr(0, colon);
        if (colon != std::string_view::npos)
            port = auth.substr(colon + 1);
    }
    if (host.empty())
        return false;
    for (char c : port) {
        if (c < '0' || c > '9')
            return false;
    }
    out.host = lowercase(host);
    out.origin = out.scheme + "://" + std::string(auth);
    return true;
}

bool is_ipv4_loopback(std::string_view h) {
    // Four decimal octets, the first 127.
    int octets = 0;
    std::size_t i = 0;
    int first = -1;
    while (i <= h.size()) {
        std::size_t j = i;
        int v = 0;
        while (j < h.size() && h[j] >= '0' && h[j] <= '9' && j - i < 3)
            v = v * 10 + (h[j++] - '0');
        if (j == i || v > 255)
            return false;
        if (first < 0)
            first = v;
        ++octets;
        if (j == h.size())
            break;
        if (h[j] != '.')
            return false;
        i = j + 1;
    }
    return octets == 4 && first == 127;
}

bool allowed_plain_http_host(std::string_view host) {
    return host == "localhost" || is_ipv4_loopback(host) || host == "::1" ||
           host == "0:0:0:0:0:0:0:1" || host == "169.254.170.2" || host == "169.254.170.23" ||
           host == "fd00:ec2::23";
}

std::string status_text(unsigned status) {
    return "HTTP " + std::to_string(status);
}

std::string transport_failure(std::string_view what, std::string_view origin, const error_code& ec,
                              const diagnostics& fd) {
    return std::string(what) + " to " + std::string(origin) +
           " failed: " + (fd.message.empty() ? ec.message() : fd.message);
}

bool valid_region(std::string_view r) {
    if (r.empty() || r.size() > 64)
        return false;
    for (char c : r) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

bool valid_session_name(std::string_view s) {
    if (s.size() < 2 || s.size() > 64)
        return false;
    for (char c : s) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '+' || c == '=' || c == ',' || c == '.' ||
                        c == '@' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool has_line_break(std::string_view s) {
    return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// STS AssumeRoleWithWebIdentity.

std::string sts_url(std::string_view region, std::string_view endpoint_override) {
    if (!endpoint_override.empty()) {
        std::string url(endpoint_override);
        const auto sep = url.find("://");
        const auto path = sep == std::string::npos ? std::string::npos : url.find('/', sep + 3);
        if (path == std::string::npos)
            url += '/';
        return url;
    }
    if (region.empty())
        return "https://sts.amazonaws.com/";
    const bool china = region.substr(0, 3) == "cn-";
    return "https://sts." + std::string(region) +
           (china ? ".amazonaws.com.cn/" : ".amazonaws.com/");
}

error_code check_web_identity_settings(const web_identity_settings& s, std::string_view origin,
                                       diagnostics& diag) {
    if (s.role_arn.substr(0, 4) != "arn:" || has_line_break(s.role_arn))
        return fail(diag, credentials_errc::invalid_configuration,
                    std::string(origin) +
                        ": the role ARN must look like arn:aws:iam::123456789012:role/name");
    if (!s.session_name.empty() && !valid_session_name(s.session_name))
        return fail(diag, credentials_errc::invalid_configuration,
                    std::string(origin) +
                        ": the role session name must be 2 to 64 characters of letters, "
                        "digits and +=,.@_-");
    if (!s.sts_region.empty() && !valid_region(s.sts_region))
        return fail(diag, credentials_errc::invalid_configuration,
                    std::string(origin) + ": \"" + excerpt(s.sts_region, 64) +
                        "\" is not an AWS region name");
    if (!s.sts_endpoint.empty()) {
        url_parts u;
        if (!split_url(s.sts_endpoint, u) || (u.scheme != "http" && u.scheme != "https"))
            return fail(diag, credentials_errc::invalid_configuration,
                        "AWS_ENDPOINT_URL_STS is not an http(s) URL");
    }
    return {};
}

asio::awaitable<error_code> assume_role_with_web_identity(const web_identity_settings& s,
                                                          const http_fetcher& fetcher,
                                                          const clock_function& clock,
                                                          timed_credentials& out,
                                                          diagnostics& diag) {
    std::string token;
    if (auto ec = read_file(s.token_file, "web identity token file", token, diag))
        co_return ec;
    token = std::string(trim(token));
    if (token.empty())
        co_return fail(diag, credentials_errc::invalid_configuration,
                       "the web identity token file " + s.token_file + " is empty");
    std::string session = s.session_name;
    if (session.empty()) {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            now_from(clock).time_since_epoch())
                            .count();
        session = "penne-" + std::to_string(ms);
    }

    http_fetch_request req;
    req.method = "POST";
    req.url = sts_url(s.sts_region, s.sts_endpoint);
    req.headers.push_back(
        http::header_field{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"});
    req.body = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=" +
               http::uri_encode(s.role_arn) + "&RoleSessionName=" + http::uri_encode(session) +
               "&WebIdentityToken=" + http::uri_encode(token);
    req.timeout = sts_timeout;
    url_parts u;
    split_url(req.url, u);

    http_fetch_response resp;
    diagnostics fd;
    auto ec = co_await fetcher(req, resp, fd);
    const std::string what = "STS AssumeRoleWithWebIdentity for role " + s.role_arn;
    if (ec) {
        diag.message = transport_failure(what, u.origin, ec, fd);
        scrub(diag.message, token);
        co_return ec;
    }

    if (resp.status != 200) {
        const auto err = parse_sts_error(resp.body, token);
        const std::string& code = err.code;
        const std::string& message = err.message;
        auto kind = classify_status(resp.status);
        std::string hint;
        if (code == "Throttling" || code == "ThrottlingException" ||
            code == "RequestLimitExceeded" || code == "IDPCommunicationError" ||
            code == "ServiceUnavailable" || code == "InternalFailure") {
            kind = credentials_errc::service_unavailable;
        } else if (code == "ExpiredTokenException") {
            kind = credentials_errc::expired;
            hint = "; the token in " + s.token_file + " has expired and should be rotated";
        } else if (code == "InvalidIdentityToken") {
            hint =
                "; check the token file " + s.token_file + " and the role's OIDC identity provider";
        } else if (code == "AccessDenied") {
            hint =
                "; check that the role's trust policy allows sts:AssumeRoleWithWebIdentity "
                "for this identity";
        }
        diag.message = what + " at " + u.origin + " failed (" + status_text(resp.status) +
                       (code.empty() ? std::string() : " " + excerpt(code, 64)) +
                       (message.empty() ? std::string() : ": " + excerpt(message)) + ")" + hint;
        scrub(diag.message, token);
        co_return make_error_code(kind);
    }
    sts_credentials parsed;
    std::string problem;
    if (!parse_sts_credentials(resp.body, u.origin, parsed, problem))
        co_return fail(diag, credentials_errc::malformed_response, what + ": " + problem);
    out.creds = std::move(parsed.creds);
    out.expiration = parsed.expiration;
    out.source = s.source;
    co_return error_code{};
}

}  // namespace detail

namespace {

// ---------------------------------------------------------------------------------------------
// Web identity from the environment.

class web_identity_provider final : public credentials_provider {
public:
    web_identity_provider(env_lookup env, http_fetcher fetcher, clock_function clock,
                          std::string sts_region)
        : env_(std::move(env)),
          fetcher_(std::move(fetcher)),
          clock_(std::move(clock)),
          sts_region_(std::move(sts_region)) {}

    asio::awaitable<error_code> fetch(timed_credentials& out, diagnostics& diag) override {
        auto token_file = detail::get_env(env_, "AWS_WEB_IDENTITY_TOKEN_FILE");
        auto role = detail::get_env(env_, "AWS_ROLE_ARN");
        if (!token_file && !role)
            co_return detail::fail(diag, credentials_errc::not_configured,
                                   "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN are not set");
        if (!token_file || !role)
            co_return detail::fail(
                diag, credentials_errc::invalid_configuration,
                std::string(token_file ? "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN "
                                         "is not"
                                       : "AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE "
                                         "is not") +
                    "; set both to assume a role with a web identity token");
        if (!fetcher_)
            co_return detail::fail(diag, credentials_errc::invalid_configuration,
                                   "web identity is configured but this provider was given no "
                                   "HTTP client for STS");
        detail::web_identity_settings s;
        s.role_arn = std::move(*role);
        s.token_file = std::move(*token_file);
        if (auto name = detail::get_env(env_, "AWS_ROLE_SESSION_NAME"))
            s.session_name = std::move(*name);
        if (!sts_region_.empty()) {
            s.sts_region = sts_region_;
        } else if (auto r = resolve_region(env_)) {
            s.sts_region = std::move(*r);
        }
        if (auto ep = detail::get_env(env_, "AWS_ENDPOINT_URL_STS"))
            s.sts_endpoint = std::move(*ep);
        s.source = "web identity";
        if (auto ec = detail::check_web_identity_settings(s, "web identity", diag))
            co_return ec;
        auto ec = co_await detail::assume_role_with_web_identity(s, fetcher_, clock_, out, diag);
        co_return ec;
    }
    std::string_view name() const noexcept override { return "web identity"; }

private:
    env_lookup env_;
    http_fetcher fetcher_;
    clock_function clock_;
    std::string sts_region_;
};

// ---------------------------------------------------------------------------------------------
// ECS / EKS Pod Identity container credentials.

class ecs_provider final : public credentials_provider {
public:
    ecs_provider(env_lookup env, http_fetcher fetcher)
        : env_(std::move(env)), fetcher_(std::move(fetcher)) {}

    asio::awaitable<error_code> fetch(timed_credentials& out, diagnostics& diag) override {
        using detail::fail;
        auto relative = detail::get_env(env_, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
        auto full = detail::get_env(env_, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
        if (!relative && !full)
            co_return fail(diag, credentials_errc::not_configured,
                           "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI and "
                           "AWS_CONTAINER_CREDENTIALS_FULL_URI are not set");
        http_fetch_request req;
        req.method = "GET";
        req.timeout = detail::ecs_timeout;
        if (relative) {
            if ((*relative)[0] != '/' || detail::has_line_break(*relative))
                co_return fail(diag, credentials_errc::invalid_configuration,
                               "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must be a path starting "
                               "with '/'");
            req.url = "http://169.254.170.2" + *relative;
        } else {
            detail::url_parts u;
            if (!detail::split_url(*full, u) || (u.scheme != "http" && u.scheme != "https") ||
                detail::has_line_break(*full))
                co_return fail(diag, credentials_errc::invalid_configuration,
                               "AWS_CONTAINER_CREDENTIALS_FULL_URI is not an http(s) URL");
            if (u.scheme == "http" && !detail::allowed_plain_http_host(u.host))
                co_return fail(diag, credentials_errc::invalid_configuration,
                               "AWS_CONTAINER_CREDENTIALS_FULL_URI names host " + u.host +
                                   " over plain http; only loopback hosts and the ECS/EKS "
                                   "agent addresses (169.254.170.2, 169.254.170.23, "
                                   "fd00:ec2::23) are allowed without https");
            req.url = *full;
        }
        std::string token;
        if (auto file = detail::get_env(env_, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) {
            if (auto ec =
                    detail::read_file(*file, "container authorization token file", token, diag))
                co_return ec;
            token = std::string(detail::trim(token));
        } else if (auto t = detail::get_env(env_, "AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
            token = std::move(*t);
        }
        if (detail::has_line_break(token))
            co_return fail(diag, credentials_errc::invalid_configuration,
                           "the container authorization token holds a line break");
        if (!token.empty())
            req.headers.push_back(http::header_field{"Authorization", token});
        req.headers.push_back(http::header_field{"Accept", "application/json"});
        if (!fetcher_)
            co_return fail(diag, credentials_errc::invalid_configuration,
                           "container credentials are configured but this provider was given "
                           "no HTTP client");

        detail::url_parts u;
        detail::split_url(req.url, u);
        http_fetch_response resp;
        diagnostics fd;
        auto ec = co_await fetcher_(req, resp, fd);
        if (ec) {
            diag.message =
                detail::transport_failure("container credentials request", u.origin, ec, fd);
            detail::scrub(diag.message, token);
            co_return ec;
        }
        if (resp.status != 200) {
            auto summary = detail::json_error_summary(resp.body, token);
            std::string hint;
            if (resp.status == 401 || resp.status == 403)
                hint =
                    "; check AWS_CONTAINER_AUTHORIZATION_TOKEN or "
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
            diag.message = "container credentials endpoint " + u.origin + " answered " +
                           detail::status_text(resp.status) +
                           (summary.empty() ? std::string() : " (" + summary + ")") + hint;
            detail::scrub(diag.message, token);
            co_return make_error_code(detail::classify_status(resp.status));
        }
        detail::json_credentials jc;
        std::string problem;
        if (!detail::parse_credentials_json(resp.body, jc, problem))
            co_return fail(diag, credentials_errc::malformed_response,
                           "container credentials endpoint " + u.origin + ": " + problem);
        out.creds = std::move(jc.creds);
        out.expiration = jc.expiration;
        out.source = "ecs";
        co_return error_code{};
    }
    std::string_view name() const noexcept override { return "ecs"; }

private:
    env_lookup env_;
    http_fetcher fetcher_;
};

// ---------------------------------------------------------------------------------------------
// EC2 instance metadata, IMDSv2.

class imds_provider final : public credentials_provider {
public:
    imds_provider(env_lookup env, http_fetcher fetcher, std::chrono::milliseconds timeout)
        : env_(std::move(env)), fetcher_(std::move(fetcher)), timeout_(timeout) {}

    asio::awaitable<error_code> fetch(timed_credentials& out, diagnostics& diag) override {
        using detail::fail;
        if (auto off = detail::get_env(env_, "AWS_EC2_METADATA_DISABLED");
            off && detail::iequals(detail::trim(*off), "true"))
            co_return fail(diag, credentials_errc::not_configured,
                           "disabled by AWS_EC2_METADATA_DISABLED");
        std::string endpoint;
        if (auto ep = detail::get_env(env_, "AWS_EC2_METADATA_SERVICE_ENDPOINT")) {
            endpoint = std::move(*ep);
            detail::url_parts u;
            if (!detail::split_url(endpoint, u) || (u.scheme != "http" && u.scheme != "https") ||
                detail::has_line_break(endpoint))
                co_return fail(diag, credentials_errc::invalid_configuration,
                               "AWS_EC2_METADATA_SERVICE_ENDPOINT is not an http(s) URL");
        } else if (auto mode = detail::get_env(env_, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
                   mode && detail::iequals(detail::trim(*mode), "ipv6")) {
            endpoint = "http://[fd00:ec2::254]";
        } else {
            endpoint = "http://169.254.169.254";
        }
        while (!endpoint.empty() && endpoint.back() == '/')
            endpoint.pop_back();
        if (!fetcher_)
            co_return fail(diag, credentials_errc::invalid_configuration,
                           "instance metadata is enabled but this provider was given no HTTP "
                           "client");

        // 1. A session token.
        http_fetch_request req;
        req.method = "PUT";
        req.url = endpoint + "/latest/api/token";
        req.headers.push_back(http::header_field{"X-aws-ec2-metadata-token-ttl-seconds", "21600"});
        req.timeout = timeout_;
        http_fetch_response resp;
        diagnostics fd;
        auto ec = co_await fetcher_(req, resp, fd);
        if (ec) {
            // Nothing answers: not on EC2 (or IMDS blocked); let the chain explain.
            diag.message = "no instance metadata service at " + endpoint + " (" +
                           (fd.message.empty() ? ec.message() : fd.message) + ")";
            co_return make_error_code(credentials_errc::not_configured);
        }
        if (resp.status != 200) {
            std::string why;
            if (resp.status == 403)
                why = "; the instance metadata service is turned off for this instance";
            else if (resp.status == 404 || resp.status == 405)
                why =
                    "; the endpoint does not support IMDSv2 session tokens, which penne "
                    "requires";
            co_return fail(diag, detail::classify_status(resp.status),
                           "instance metadata token request to " + endpoint + " answered " +
                               detail::status_text(resp.status) + why);
        }
        const std::string token(detail::trim(resp.body));
        if (token.empty() || detail::has_line_break(token))
            co_return fail(diag, credentials_errc::malformed_response,
                           "instance metadata at " + endpoint +
                               " answered the token request without a usable token");

        // 2. The role attached to the instance.
        const std::string base = endpoint + "/latest/meta-data/iam/security-credentials/";
        req = {};
        req.method = "GET";
        req.url = base;
        req.headers.push_back(http::header_field{"X-aws-ec2-metadata-token", token});
        req.timeout = timeout_;
        resp = {};
        fd.clear();
        ec = co_await fetcher_(req, resp, fd);
        if (ec) {
            diag.message =
                detail::transport_failure("instance metadata role request", endpoint, ec, fd);
            detail::scrub(diag.message, token);
            co_return ec;
        }
        if (resp.status == 404)
            co_return fail(diag, credentials_errc::not_configured,
                           "no IAM role is attached to this EC2 instance (instance metadata at " +
                               endpoint + ")");
        if (resp.status != 200)
            co_return fail(diag, detail::classify_status(resp.status),
                           "instance metadata role request to " + endpoint + " answered " +
                               detail::status_text(resp.status));
        std::string role;
        for (std::string_view rest = resp.body; !rest.empty();) {
            const auto nl = rest.find('\n');
            const auto line = detail::trim(rest.substr(0, nl));
            if (!line.empty()) {
                role = std::string(line);
                break;
            }
            rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
        }
        if (role.empty())
            co_return fail(diag, credentials_errc::not_configured,
                           "no IAM role is attached to this EC2 instance (instance metadata at " +
                               endpoint + ")");

        // 3. The role's credentials.
        req.url = base + http::uri_encode(role);
        resp = {};
        fd.clear();
        ec = co_await fetcher_(req, resp, fd);
        const std::string what = "instance metadata credentials for role " + detail::excerpt(role);
        if (ec) {
            diag.message = detail::transport_failure(what + " request", endpoint, ec, fd);
            detail::scrub(diag.message, token);
            co_return ec;
        }
        if (resp.status != 200)
            co_return fail(diag,
                           resp.status == 404 ? credentials_errc::service_unavailable
                                              : detail::classify_status(resp.status),
                           what + " at " + endpoint + ": " + detail::status_text(resp.status));
        detail::json_credentials jc;
        std::string problem;
        if (!detail::parse_credentials_json(resp.body, jc, problem))
            co_return fail(diag, credentials_errc::malformed_response,
                           what + " at " + endpoint + ": " + problem);
        if (jc.code != "Success")
            co_return fail(diag, credentials_errc::service_rejected,
                           what + " at " + endpoint + ": Code is " +
                               (jc.code.empty() ? std::string("missing")
                                                : "\"" + detail::excerpt(jc.code, 64) + "\"") +
                               ", not \"Success\"");
        if (jc.creds.session_token.empty() || !jc.expiration)
            co_return fail(diag, credentials_errc::malformed_response,
                           what + " at " + endpoint + ": the reply has no " +
                               (jc.creds.session_token.empty() ? "Token" : "Expiration"));
        out.creds = std::move(jc.creds);
        out.expiration = jc.expiration;
        out.source = "imds (role " + detail::excerpt(role, 128) + ")";
        co_return error_code{};
    }
    std::string_view name() const noexcept override { return "imds"; }

private:
    env_lookup env_;
    http_fetcher fetcher_;
    std::chrono::milliseconds timeout_;
};

}  // namespace

std::unique_ptr<credentials_provider> make_web_identity_provider(env_lookup env,
                                                                 http_fetcher fetcher,
                                                                 clock_function clock,
                                                                 std::string sts_region) {
    return std::make_unique<web_identity_provider>(std::move(env), std::move(fetcher),
                                                   std::move(clock), std::move(sts_region));
}

std::unique_ptr<credentials_provider> make_ecs_provider(env_lookup env, http_fetcher fetcher) {
    return std::make_unique<ecs_provider>(std::move(env), std::move(fetcher));
}

std::unique_ptr<credentials_provider> make_imds_provider(env_lookup env, http_fetcher fetcher,
                                                         std::chrono::milliseconds timeout) {
    return std::make_unique<imds_provider>(std::move(env), std::move(fetcher), timeout);
}

}  // namespace penne::s3
