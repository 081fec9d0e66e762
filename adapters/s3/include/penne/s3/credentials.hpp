#pragma once
// Where the S3 client's credentials come from (DESIGN §7): the chain a production AWS client
// walks, refreshed before the credentials expire, never logging a secret.
//
// Providers, in the default chain's order:
//   1. static config    access key id, secret and optional session token from penne.toml
//   2. environment      AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
//   3. shared profile   ~/.aws/credentials and ~/.aws/config (AWS_SHARED_CREDENTIALS_FILE,
//                       AWS_CONFIG_FILE, AWS_PROFILE); static keys, or role_arn +
//                       web_identity_token_file (STS web identity)
//   4. web identity     AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (+ AWS_ROLE_SESSION_NAME):
//                       STS AssumeRoleWithWebIdentity (EKS IRSA)
//   5. ecs              AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI (ECS task roles,
//                       EKS Pod Identity), with AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]
//   6. imds             EC2 instance metadata, IMDSv2 only (AWS_EC2_METADATA_DISABLED,
//                       AWS_EC2_METADATA_SERVICE_ENDPOINT)
//
// Chain semantics: a provider whose settings are absent answers credentials_errc::
// not_configured and the chain moves on; a provider that is configured but fails (partial
// environment, unreadable token file, STS error) stops the chain with its error, so a broken
// web identity setup never silently falls through to a different identity from IMDS. When no
// provider applies, the error lists every provider with the reason it did not apply, and how
// to configure credentials.
//
// Shared files, as penne reads them (the AWS CLI's rules where they are unambiguous):
// - `#` and `;` start a comment line; in a value, a `#` or `;` preceded by a space or tab
//   starts a comment too (AWS keys and tokens never hold spaces). Lines are trimmed, CRLF is
//   accepted, a line indented under a property continues it (nested `s3 =` blocks).
// - Property names are case-insensitive (the CLI's parser lowercases them); profile names
//   are case-sensitive. A repeated property or section: the last one wins.
// - The credentials file names sections `[name]`; the config file `[profile name]`, except
//   `[default]` (`[profile default]` is accepted too). Other config sections (sso-session,
//   services) are ignored. Both files may define a profile: their properties merge, the
//   credentials file winning.
// - The profile is the one passed in, else AWS_PROFILE, else "default". A named profile that
//   exists in neither file is an error; a missing `default` profile (or one holding only
//   settings such as region) is "not configured". A profile whose credentials are
//   incomplete is an error naming the file and the profile.
// - AWS_SHARED_CREDENTIALS_FILE and AWS_CONFIG_FILE replace the default paths ($HOME/.aws/…;
//   a leading `~/` is expanded); a file named by those variables must exist.
// - Error messages name files and line numbers, never a line's content.
//
// Injection (STYLE.md §8): the environment is an env_lookup, the time a clock_function and
// every HTTP exchange goes through an http_fetcher; the providers read only the files named
// by the environment (small, local, synchronous reads). system_environment() is for app/.
//
// Thread safety: providers are not thread-safe; the chain calls one provider at a time. The
// chain's get(), invalidate() and source() may be called from any thread or strand at once:
// get() runs on the chain's own strand, and at most one refresh is in flight (every caller
// that needs fresh credentials waits for that one refresh).
//
// Cancellation: cancelling a get() (terminal) completes it with operation_aborted; a refresh
// it started keeps running for the other callers and the next get(). Each HTTP exchange is
// bounded by the timeout in its request (IMDS 1 s, ECS 2 s, STS 5 s).
//
// Lifetimes: the chain may be destroyed while a refresh is in flight (the refresh owns the
// providers through shared state); the executor must outlive it. A moved-from chain may only
// be destroyed or assigned to. The env_lookup, clock and
// fetcher are copied and must stay callable for the chain's lifetime.
//
// Secrets: secret access keys, session tokens, web identity tokens, IMDS tokens and container
// authorization tokens never appear in diagnostics or in source(); a body that may hold a
// secret (a malformed credentials reply) is never quoted.

#include <penne/error.hpp>
#include <penne/http/sigv4.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace penne::s3 {

// ---------------------------------------------------------------------------------------------
// Errors. Transport failures of an HTTP exchange keep the fetcher's own code (asio errors,
// penne::errc::timeout), which penne::is_retryable already classifies.

enum class credentials_errc {
    not_configured = 1,     // the provider's settings are absent; the chain tries the next one
    no_credentials,         // no provider in the chain applies
    invalid_configuration,  // settings present but incomplete or unusable (partial env vars,
                            // a profile without a secret, a container URI on a foreign host)
    profile_not_found,      // the selected profile is in neither shared file
    file_unreadable,        // a shared file or token file named by the settings cannot be read
    file_malformed,         // a shared file has a line that is no section, property or comment
    service_unavailable,    // STS, ECS or IMDS answered 5xx, 429 or throttling (retryable)
    service_rejected,       // STS, ECS or IMDS refused (4xx, an error document, Code != Success)
    malformed_response,     // a successful reply that is not the documented XML or JSON; not
                            // retryable: a metadata service that answers 200 with garbage is
                            // misconfigured (a proxy in the way), not busy
    expired,  // the source handed out credentials that had already expired (a clock off, or
              // a stale cache upstream), or STS found the web identity token expired;
              // retryable: the source rotates them, the token file is read again
};

const boost::system::error_category& credentials_category() noexcept;

inline error_code make_error_code(credentials_errc e) noexcept {
    return {static_cast<int>(e), credentials_category()};
}

// ---------------------------------------------------------------------------------------------
// Injected services.

// Looks a variable up; nullopt when unset. An empty value counts as unset everywhere here.
using env_lookup = std::function<std::optional<std::string>(std::string_view)>;
// The process environment through ::getenv (for app/, the composition root).
env_lookup system_environment();
// A fixed environment (tests, embedders that configure credentials programmatically).
env_lookup fixed_environment(std::map<std::string, std::string, std::less<>> vars);

using clock_function = std::function<std::chrono::system_clock::time_point()>;

// One HTTP exchange. `url` is absolute (http or https); the fetcher derives Host and
// Content-Length from it and from `body`, and bounds the whole exchange by `timeout`.
struct http_fetch_request {
    std::string method;
    std::string url;
    std::vector<http::header_field> headers;
    std::string body;
    std::chrono::milliseconds timeout{1000};
};

struct http_fetch_response {
    unsigned status = 0;
    std::vector<http::header_field> headers;
    std::string body;
};

// Completes with an error only when no HTTP response arrived (connection, TLS, timeout);
// any status, 4xx and 5xx included, is a success with the status in the response.
using http_fetcher = std::function<boost::asio::awaitable<error_code>(
    const http_fetch_request&, http_fetch_response&, diagnostics&)>;

// ---------------------------------------------------------------------------------------------
// Providers.

struct timed_credentials {
    http::credentials creds;
    // nullopt: long-term keys that never expire (static, environment, shared files).
    std::optional<std::chrono::system_clock::time_point> expiration;
    // Where they came from, for logs and /status: "static config", "environment",
    // "profile dev (~/.aws/credentials)", "web identity", "ecs", "imds (role name)". No
    // secret.
    std::string source;
};

class credentials_provider {
public:
    virtual ~credentials_provider() = default;
    // Fresh credentials, or credentials_errc::not_configured (with the reason in `diag`) when
    // this provider's settings are absent, or the error that stops the chain.
    virtual boost::asio::awaitable<error_code> fetch(timed_credentials& out, diagnostics& diag) = 0;
    // "static config", "environment", "shared profile", "web identity", "ecs", "imds".
    virtual std::string_view name() const noexcept = 0;
};

// Empty credentials: not configured. An id without a secret (or the reverse): an error.
std::unique_ptr<credentials_provider> make_static_provider(http::credentials creds);

std::unique_ptr<credentials_provider> make_environment_provider(env_lookup env);

// `profile` empty: AWS_PROFILE, else "default". `fetcher` and `clock` serve profiles that
// assume a role with web_identity_token_file (without a fetcher such a profile is an error);
// `sts_region` as for make_web_identity_provider.
std::unique_ptr<credentials_provider> make_profile_provider(env_lookup env,
                                                            std::string profile = {},
                                                            http_fetcher fetcher = {},
                                                            clock_function clock = {},
                                                            std::string sts_region = {});

// STS endpoint: AWS_ENDPOINT_URL_STS, else https://sts.<region>.amazonaws.com/ with the
// region from `sts_region`, else AWS_REGION, AWS_DEFAULT_REGION or the profile's region,
// else the global https://sts.amazonaws.com/. The request is a POST form (the token stays out
// of URLs that proxies log), unsigned, as STS expects for this action. The token file is read
// again at every fetch (the orchestrator rotates it). Without AWS_ROLE_SESSION_NAME the
// session is named "penne-<unix milliseconds>".
std::unique_ptr<credentials_provider> make_web_identity_provider(env_lookup env,
                                                                 http_fetcher fetcher,
                                                                 clock_function clock = {},
                                                                 std::string sts_region = {});

// RELATIVE_URI wins over FULL_URI (both set is not an error, as in the AWS SDKs). A FULL_URI
// over plain http must name a loopback host (127.0.0.0/8, ::1, localhost) or the ECS/EKS
// agent (169.254.170.2, 169.254.170.23, fd00:ec2::23); https may name any host. The token
// file wins over AWS_CONTAINER_AUTHORIZATION_TOKEN and is read at every fetch.
std::unique_ptr<credentials_provider> make_ecs_provider(env_lookup env, http_fetcher fetcher);

// IMDSv2 only: no fallback to the unauthenticated v1 protocol. When the token request gets
// no answer at all (not on EC2), or the instance has no role attached, the provider is
// "not configured", so the chain's final error explains it; any other failure is an error.
std::unique_ptr<credentials_provider> make_imds_provider(
    env_lookup env, http_fetcher fetcher,
    std::chrono::milliseconds timeout = std::chrono::milliseconds{1000});

// ---------------------------------------------------------------------------------------------
// The chain.

struct chain_options {
    // From penne.toml; empty means "not set" (the static provider is skipped).
    http::credentials static_credentials;
    // Overrides AWS_PROFILE when not empty.
    std::string profile;
    // Region for STS web identity calls when set (see make_web_identity_provider).
    std::string sts_region;
    std::chrono::milliseconds imds_timeout{1000};
    std::chrono::seconds refresh_before{300};
    // After a failed refresh while the old credentials are still valid, the next attempt
    // waits this long (so that an outage does not turn every request into a refresh).
    std::chrono::seconds retry_after_failure{30};
};

class credentials_chain {
public:
    // `clock` empty: the system clock. Credentials with an expiration are refreshed
    // `refresh_before` ahead of it (or at half their remaining lifetime when they live
    // shorter than that).
    credentials_chain(boost::asio::any_io_executor ex,
                      std::vector<std::unique_ptr<credentials_provider>> providers,
                      clock_function clock = {},
                      std::chrono::seconds refresh_before = std::chrono::seconds{300},
                      std::chrono::seconds retry_after_failure = std::chrono::seconds{30});

    // The default chain in the order at the top of this file.
    static credentials_chain default_chain(boost::asio::any_io_executor ex,
                                           const chain_options& options, env_lookup env,
                                           http_fetcher fetcher, clock_function clock = {});

    credentials_chain(credentials_chain&&) noexcept = default;
    credentials_chain& operator=(credentials_chain&&) noexcept = default;
    credentials_chain(const credentials_chain&) = delete;
    credentials_chain& operator=(const credentials_chain&) = delete;
    ~credentials_chain();

    // The current credentials, refreshed first when there are none, when invalidate() was
    // called, or when they are within the refresh window. When a refresh fails but the old
    // credentials have not expired yet, completes successfully with them and with the
    // refresh error in `diag` (for a warning in the log); otherwise `diag` is empty on
    // success.
    boost::asio::awaitable<error_code> get(http::credentials& out, diagnostics& diag);

    // After S3 answered ExpiredToken or InvalidAccessKeyId: the next get() fetches again and
    // does not fall back on the rejected credentials.
    void invalidate() noexcept;

    // Which provider supplied the current credentials (timed_credentials::source); empty
    // before the first success.
    std::string source() const;

private:
    struct state;
    std::shared_ptr<state> state_;
};

// ---------------------------------------------------------------------------------------------
// Settings resolved the way AWS SDKs do. `profile` empty: AWS_PROFILE, else "default".
// Unreadable or malformed shared files count as "not set" here (the credentials chain
// reports them).

// AWS_REGION, AWS_DEFAULT_REGION, then the profile's `region`.
std::optional<std::string> resolve_region(const env_lookup& env, std::string_view profile = {});
// AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, then the profile's `endpoint_url`; none of them when
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS is true.
std::optional<std::string> resolve_endpoint_url(const env_lookup& env,
                                                std::string_view profile = {});

}  // namespace penne::s3

template <>
struct boost::system::is_error_code_enum<penne::s3::credentials_errc> : std::true_type {};
