// The credentials chain: error category, environment helpers, the static and environment
// providers, and the refreshing, single-flight chain itself. The shared-file provider lives
// in detail/credentials_files.cpp, the HTTP providers (STS, ECS, IMDS) in
// detail/credentials_remote.cpp.
#include <penne/detail/await_on.hpp>
#include <penne/s3/credentials.hpp>

#include "detail/credentials_detail.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <system_error>
#include <tuple>
#include <utility>

namespace penne::s3 {

namespace asio = boost::asio;
using std::chrono::system_clock;

// ---------------------------------------------------------------------------------------------
// Errors.

namespace {

class credentials_category_impl final : public classified_category {
public:
    const char* name() const noexcept override { return "penne.s3.credentials"; }
    std::string message(int ev) const override {
        switch (static_cast<credentials_errc>(ev)) {
            case credentials_errc::not_configured:
                return "credentials provider not configured";
            case credentials_errc::no_credentials:
                return "no AWS credentials found";
            case credentials_errc::invalid_configuration:
                return "invalid AWS credentials configuration";
            case credentials_errc::profile_not_found:
                return "AWS profile not found";
            case credentials_errc::file_unreadable:
                return "cannot read a credentials file";
            case credentials_errc::file_malformed:
                return "malformed AWS shared config or credentials file";
            case credentials_errc::service_unavailable:
                return "credentials service temporarily unavailable";
            case credentials_errc::service_rejected:
                return "credentials service refused the request";
            case credentials_errc::malformed_response:
                return "malformed reply from a credentials service";
            case credentials_errc::expired:
                return "credentials source returned expired credentials";
        }
        return "unknown credentials error";
    }
    bool retryable(int ev) const noexcept override {
        switch (static_cast<credentials_errc>(ev)) {
            case credentials_errc::service_unavailable:
            case credentials_errc::expired:
                return true;
            default:
                return false;
        }
    }
};

}  // namespace

const boost::system::error_category& credentials_category() noexcept {
    static const credentials_category_impl cat;
    return cat;
}

// ---------------------------------------------------------------------------------------------
// Environment.

env_lookup system_environment() {
    return [](std::string_view name) -> std::optional<std::string> {
        const std::string key(name);
        if (const char* v = std::getenv(key.c_str()))
            return std::string(v);
        return std::nullopt;
    };
}

env_lookup fixed_environment(std::map<std::string, std::string, std::less<>> vars) {
    return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
        if (auto it = vars.find(name); it != vars.end())
            return it->second;
        return std::nullopt;
    };
}

// ---------------------------------------------------------------------------------------------
// Shared helpers (detail).

namespace detail {

std::string_view trim(std::string_view s) noexcept {
    constexpr std::string_view ws = " \t\r\n\f\v";
    const auto b = s.find_first_not_of(ws);
    if (b == std::string_view::npos)
        return {};
    const auto e = s.find_last_not_of(ws);
    return s.substr(b, e - b + 1);
}

std::string lowercase(std::string_view s) {
    std::string out(s);
    for (auto& c : out) {
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z')
            x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = static_cast<char>(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return true;
}

std::optional<std::string> get_env(const env_lookup& env, std::string_view name) {
    if (!env)
        return std::nullopt;
    auto v = env(name);
    if (!v || v->empty())
        return std::nullopt;
    return v;
}

void scrub(std::string& text, std::string_view secret) {
    // Shorter strings would match ordinary words; no AWS secret is that short.
    if (secret.size() < 8)
        return;
    constexpr std::string_view mask = "<redacted>";
    for (auto pos = text.find(secret); pos != std::string::npos;
         pos = text.find(secret, pos + mask.size()))
        text.replace(pos, secret.size(), mask);
}

std::string excerpt(std::string_view text, std::size_t max) {
    text = trim(text);
    std::string out(text.substr(0, max));
    for (auto& c : out) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f)
            c = ' ';
    }
    if (text.size() > max)
        out += "…";
    return out;
}

namespace {

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
    if (pos + n > s.size())
        return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

}  // namespace

bool parse_iso8601(std::string_view text, system_clock::time_point& out) {
    using namespace std::chrono;
    const std::string_view s = trim(text);
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (!digits(s, 0, 4, y) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, mo) ||
        s[7] != '-' || !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' ||
        !digits(s, 17, 2, sec))
        return false;
    const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)},
                             day{static_cast<unsigned>(d)}};
    if (!ymd.ok() || h > 23 || mi > 59 || sec > 59)
        return false;
    std::size_t pos = 19;
    nanoseconds frac{0};
    if (pos < s.size() && (s[pos] == '.' || s[pos] == ',')) {
        ++pos;
        const std::size_t start = pos;
        long long scale = 100'000'000, ns = 0;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            ns += (s[pos] - '0') * scale;
            scale /= 10;
            ++pos;
        }
        if (pos == start)
            return false;
        frac = nanoseconds{ns};
    }
    minutes offset{0};
    if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
        ++pos;
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
        const int sign = s[pos] == '-' ? -1 : 1;
        int oh = 0, om = 0;
        if (!digits(s, pos + 1, 2, oh))
            return false;
        std::size_t p = pos + 3;
        if (p < s.size() && s[p] == ':')
            ++p;
        if (!digits(s, p, 2, om) || oh > 23 || om > 59)
            return false;
        offset = minutes{sign * (oh * 60 + om)};
        pos = p + 2;
    } else {
        return false;  // a time without a zone is ambiguous
    }
    if (pos != s.size())
        return false;
    const auto t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} - offset;
    out = time_point_cast<system_clock::duration>(t + frac);
    return true;
}

std::string format_iso8601(system_clock::time_point t) {
    using namespace std::chrono;
    const auto secs = floor<seconds>(t);
    const auto dp = floor<days>(secs);
    const year_month_day ymd{dp};
    const hh_mm_ss hms{secs - dp};
    char buf[40];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                  static_cast<int>(hms.seconds().count()));
    return buf;
}

system_clock::time_point now_from(const clock_function& clock) {
    return clock ? clock() : system_clock::now();
}

error_code read_file(const std::string& path, std::string_view what, std::string& out,
                     diagnostics& diag, bool* missing) {
    // Shared files and tokens are a few KiB; anything this big is not one of them.
    constexpr off_t max_size = 1 << 20;
    if (missing)
        *missing = false;
    auto fail = [&](int err) {
        if (missing && err == ENOENT)
            *missing = true;
        diag.message = "cannot read " + std::string(what) + " " + path + ": " +
                       std::generic_category().message(err);
        return make_error_code(credentials_errc::file_unreadable);
    };
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(errno);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        return fail(err);
    }
    if (S_ISDIR(st.st_mode)) {
        ::close(fd);
        return fail(EISDIR);
    }
    if (S_ISREG(st.st_mode) && st.st_size > max_size) {
        ::close(fd);
        return fail(EFBIG);
    }
    out.clear();
    char buf[4096];
    for (;;) {
        const auto n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            const int err = errno;
            ::close(fd);
            return fail(err);
        }
        if (n == 0)
            break;
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() > static_cast<std::size_t>(max_size)) {
            ::close(fd);
            return fail(EFBIG);
        }
    }
    ::close(fd);
    return {};
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Static and environment providers.

namespace {

class static_provider final : public credentials_provider {
public:
    explicit static_provider(http::credentials creds) : creds_(std::move(creds)) {}

    asio::awaitable<error_code> fetch(timed_credentials& out, diagnostics& diag) override {
        const bool id = !creds_.access_key_id.empty();
        const bool secret = !creds_.secret_access_key.empty();
        const bool token = !creds_.session_token.empty();
        if (!id && !secret && !token) {
            diag.message = "no access key id in the configuration";
            co_return make_error_code(credentials_errc::not_configured);
        }
        if (!id || !secret) {
            diag.message = std::string("the configuration has ") +
                           (id ? "an access key id but no secret access key"
                               : (secret ? "a secret access key but no access key id"
                                         : "a session token but no access key id and secret "
                                           "access key")) +
                           "; set both (and the session token for temporary credentials)";
            co_return make_error_code(credentials_errc::invalid_configuration);
        }
        out.creds = creds_;
        out.expiration.reset();
        out.source = "static config";
        co_return error_code{};
    }
    std::string_view name() const noexcept override { return "static config"; }

private:
    http::credentials creds_;
};

class environment_provider final : public credentials_provider {
public:
    explicit environment_provider(env_lookup env) : env_(std::move(env)) {}

    asio::awaitable<error_code> fetch(timed_credentials& out, diagnostics& diag) override {
        auto id = detail::get_env(env_, "AWS_ACCESS_KEY_ID");
        auto secret = detail::get_env(env_, "AWS_SECRET_ACCESS_KEY");
        auto token = detail::get_env(env_, "AWS_SESSION_TOKEN");
        if (!id && !secret && !token) {
            diag.message = "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set";
            co_return make_error_code(credentials_errc::not_configured);
        }
        if (!id || !secret) {
            if (id)
                diag.message = "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not";
            else if (secret)
                diag.message = "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not";
            else
                diag.message =
                    "AWS_SESSION_TOKEN is set but AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                    "are not";
            diag.message += "; set both (and AWS_SESSION_TOKEN for temporary credentials)";
            co_return make_error_code(credentials_errc::invalid_configuration);
        }
        out.creds.access_key_id = std::move(*id);
        out.creds.secret_access_key = std::move(*secret);
        out.creds.session_token = token ? std::move(*token) : std::string();
        out.expiration.reset();
        out.source = "environment";
        co_return error_code{};
    }
    std::string_view name() const noexcept override { return "environment"; }

private:
    env_lookup env_;
};

}  // namespace

std::unique_ptr<credentials_provider> make_static_provider(http::credentials creds) {
    return std::make_unique<static_provider>(std::move(creds));
}

std::unique_ptr<credentials_provider> make_environment_provider(env_lookup env) {
    return std::make_unique<environment_provider>(std::move(env));
}

// ---------------------------------------------------------------------------------------------
// The chain.

struct credentials_chain::state : std::enable_shared_from_this<state> {
    state(asio::any_io_executor ex, std::vector<std::unique_ptr<credentials_provider>> p,
          clock_function c, std::chrono::seconds before, std::chrono::seconds retry)
        : strand(asio::make_strand(std::move(ex))),
          providers(std::move(p)),
          clock(std::move(c)),
          refresh_before(before),
          retry_after_failure(retry),
          refresh_done(strand) {
        refresh_done.expires_at(asio::steady_timer::time_point::max());
    }

    asio::strand<asio::any_io_executor> strand;
    const std::vector<std::unique_ptr<credentials_provider>> providers;
    const clock_function clock;
    const std::chrono::seconds refresh_before;
    const std::chrono::seconds retry_after_failure;
    // Never expires; cancel() wakes every get() waiting for the refresh in flight.
    asio::steady_timer refresh_done;

    // Only touched on the strand.
    std::optional<timed_credentials> current;
    system_clock::time_point refresh_at{};  // when `current` is due for a refresh
    system_clock::time_point not_before{};  // no new attempt before (after a failure)
    bool in_flight = false;
    std::uint64_t started = 0;   // refreshes started
    std::uint64_t finished = 0;  // the newest refresh that finished
    std::uint64_t invalidations_seen = 0;
    error_code last_ec;        // outcome of the newest finished refresh
    std::string last_message;  // its error, or the warning when the old credentials were kept

    // Any thread.
    std::atomic<std::uint64_t> invalidations{0};
    mutable std::mutex source_mutex;
    std::string source_text;

    void set_source(std::string s) {
        std::lock_guard lock(source_mutex);
        source_text = std::move(s);
    }

    bool usable(system_clock::time_point now) const {
        return current && (!current->expiration || now < *current->expiration);
    }

    void start_refresh() {
        in_flight = true;
        const auto seq = ++started;
        const auto inv = invalidations.load();
        if (inv != invalidations_seen) {
            // S3 rejected the current credentials: never fall back on them.
            invalidations_seen = inv;
            current.reset();
            set_source({});
        }
        asio::co_spawn(strand, run_refresh(shared_from_this(), seq), asio::detached);
    }

    static asio::awaitable<error_code> get_on_strand(std::shared_ptr<state> self,
                                                     http::credentials& out, diagnostics& diag) {
        co_await asio::this_coro::throw_if_cancelled(false);
        diag.clear();
        const auto now = detail::now_from(self->clock);
        const bool invalidated = self->invalidations.load() != self->invalidations_seen;
        const bool valid = !invalidated && self->usable(now);
        const bool due = !valid || (self->current->expiration && now >= self->refresh_at &&
                                    now >= self->not_before);
        if (!due) {
            out = self->current->creds;
            co_return error_code{};
        }
        if (!self->in_flight)
            self->start_refresh();
        const auto target = self->started;
        while (self->finished < target) {
            auto waited =
                co_await self->refresh_done.async_wait(asio::as_tuple(asio::use_awaitable));
            (void)waited;
            asio::cancellation_state cs = co_await asio::this_coro::cancellation_state;
            if (cs.cancelled() != asio::cancellation_type::none) {
                diag.message = "waiting for AWS credentials was cancelled";
                co_return make_error_code(asio::error::operation_aborted);
            }
        }
        if (self->last_ec || !self->current) {
            diag.message = self->last_message;
            co_return self->last_ec ? self->last_ec
                                    : make_error_code(credentials_errc::no_credentials);
        }
        out = self->current->creds;
        diag.message = self->last_message;
        co_return error_code{};
    }

    static asio::awaitable<void> run_refresh(std::shared_ptr<state> self, std::uint64_t seq) {
        timed_credentials got;
        error_code ec;
        std::string message;
        std::string tried;
        bool found = false;
        for (const auto& p : self->providers) {
            timed_credentials candidate;
            diagnostics pd;
            error_code pec;
            try {
                pec = co_await p->fetch(candidate, pd);
            } catch (const std::exception& e) {
                pec = make_error_code(errc::io_error);
                pd.message = "failed unexpectedly: " + detail::excerpt(e.what());
            }
            if (pec == credentials_errc::not_configured) {
                if (!tried.empty())
                    tried += "; ";
                tried += std::string(p->name()) + " (" + pd.message + ")";
                continue;
            }
            if (pec) {
                ec = pec;
                message = "AWS credentials from " + std::string(p->name()) + ": " + pd.message;
                break;
            }
            if (candidate.creds.access_key_id.empty() ||
                candidate.creds.secret_access_key.empty()) {
                ec = make_error_code(credentials_errc::malformed_response);
                message = "AWS credentials from " + std::string(p->name()) +
                          ": the provider returned an empty access key id or secret";
                break;
            }
            got = std::move(candidate);
            if (got.source.empty())
                got.source = std::string(p->name());
            found = true;
            break;
        }
        const auto now = detail::now_from(self->clock);
        if (found && got.expiration && *got.expiration <= now) {
            ec = make_error_code(credentials_errc::expired);
            message = "AWS credentials from " + got.source + " expired at " +
                      detail::format_iso8601(*got.expiration) + " before they were used (now " +
                      detail::format_iso8601(now) + "); check the system clock";
            found = false;
        }
        if (!found && !ec) {
            ec = make_error_code(credentials_errc::no_credentials);
            message =
                "no AWS credentials found; tried " + (tried.empty() ? "no provider" : tried) +
                ". Configure one: access_key_id and secret_access_key in the configuration, "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, a profile in "
                "~/.aws/credentials (selected with AWS_PROFILE), or an IAM role (EKS web "
                "identity, ECS task role, EC2 instance profile)";
        }
        // Belt and braces: no message leaves the chain holding a secret it knows.
        for (const auto* c :
             {found ? &got.creds : nullptr, self->current ? &self->current->creds : nullptr}) {
            if (c) {
                detail::scrub(message, c->secret_access_key);
                detail::scrub(message, c->session_token);
            }
        }

        if (found) {
            if (got.expiration) {
                const auto lifetime = *got.expiration - now;
                self->refresh_at =
                    std::max(*got.expiration - self->refresh_before, now + lifetime / 2);
            }
            self->current = std::move(got);
            self->not_before = {};
            self->last_ec = {};
            self->last_message.clear();
            self->set_source(self->current->source);
        } else if (self->usable(now)) {
            self->last_ec = {};
            self->last_message = "refreshing AWS credentials failed; still using those from " +
                                 self->current->source;
            if (self->current->expiration)
                self->last_message +=
                    " until they expire at " + detail::format_iso8601(*self->current->expiration);
            self->last_message += ": " + message;
            self->not_before = now + self->retry_after_failure;
        } else {
            self->current.reset();
            self->set_source({});
            self->last_ec = ec;
            self->last_message = std::move(message);
        }
        self->finished = std::max(self->finished, seq);
        self->in_flight = false;
        self->refresh_done.cancel();
    }
};

credentials_chain::credentials_chain(asio::any_io_executor ex,
                                     std::vector<std::unique_ptr<credentials_provider>> providers,
                                     clock_function clock, std::chrono::seconds refresh_before,
                                     std::chrono::seconds retry_after_failure)
    : state_(std::make_shared<state>(std::move(ex), std::move(providers), std::move(clock),
                                     refresh_before, retry_after_failure)) {}

credentials_chain::~credentials_chain() = default;

credentials_chain credentials_chain::default_chain(asio::any_io_executor ex,
                                                   const chain_options& options, env_lookup env,
                                                   http_fetcher fetcher, clock_function clock) {
    std::vector<std::unique_ptr<credentials_provider>> providers;
    providers.push_back(make_static_provider(options.static_credentials));
    providers.push_back(make_environment_provider(env));
    providers.push_back(
        make_profile_provider(env, options.profile, fetcher, clock, options.sts_region));
    providers.push_back(make_web_identity_provider(env, fetcher, clock, options.sts_region));
    providers.push_back(make_ecs_provider(env, fetcher));
    providers.push_back(make_imds_provider(env, fetcher, options.imds_timeout));
    return credentials_chain(std::move(ex), std::move(providers), std::move(clock),
                             options.refresh_before, options.retry_after_failure);
}

asio::awaitable<error_code> credentials_chain::get(http::credentials& out, diagnostics& diag) {
    auto self = state_;
    error_code ec;
    bool failed = false;
    try {
        ec = co_await penne::detail::await_on(self->strand, state::get_on_strand(self, out, diag));
    } catch (...) {
        failed = true;
    }
    if (failed) {
        // Only an allocation failure can get here; keep exceptions inside the library.
        diag.message = "AWS credentials: internal failure while waiting for a refresh";
        co_return make_error_code(errc::io_error);
    }
    co_return ec;
}

void credentials_chain::invalidate() noexcept {
    state_->invalidations.fetch_add(1);
}

std::string credentials_chain::source() const {
    std::lock_guard lock(state_->source_mutex);
    return state_->source_text;
}

}  // namespace penne::s3
