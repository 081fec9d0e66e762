#pragma once
// Private helpers shared by the credentials sources: time text, file reads, redaction, the
// shared-file (profile) model, and the web identity provider the profile provider reuses.
// Nothing here is installed or used outside adapters/s3/src.

#include <penne/s3/credentials.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace penne::s3::detail {

// ---- text ----------------------------------------------------------------------------------

std::string_view trim(std::string_view s) noexcept;
std::string lowercase(std::string_view s);
bool iequals(std::string_view a, std::string_view b) noexcept;

// A non-empty value of `name`, or nullopt (unset and empty are the same here).
std::optional<std::string> get_env(const env_lookup& env, std::string_view name);

// Replaces every occurrence of `secret` (when it is long enough to be one) by "<redacted>".
void scrub(std::string& text, std::string_view secret);
// At most `max` bytes of untrusted text for a message, control bytes replaced by spaces.
std::string excerpt(std::string_view text, std::size_t max = 200);

// ---- time ----------------------------------------------------------------------------------

// "2026-12-06T10:00:00Z", optional fraction, "Z" or a "+hh:mm"/"-hh:mm" offset.
bool parse_iso8601(std::string_view text, std::chrono::system_clock::time_point& out);
// "2026-12-06T10:00:00Z" (seconds truncated).
std::string format_iso8601(std::chrono::system_clock::time_point t);

std::chrono::system_clock::time_point now_from(const clock_function& clock);

// ---- files ---------------------------------------------------------------------------------

// Reads a whole (small) file. On failure returns file_unreadable, with `what` (a description
// such as "web identity token file /var/run/token") and the system's reason in `diag`;
// `missing` tells "does not exist" apart from other failures.
error_code read_file(const std::string& path, std::string_view what, std::string& out,
                     diagnostics& diag, bool* missing = nullptr);

// ---- shared files (profiles) ---------------------------------------------------------------

enum class profile_file_kind { credentials, config };

struct profile_property {
    std::string value;
    std::string file;  // display name of the file that set it
};

// Profile name -> property name (lowercase) -> value.
using profile_map = std::map<std::string, std::map<std::string, profile_property>, std::less<>>;

// Parses one file's text into `out` (merging: later values win). `display` names the file
// in messages and in profile_property::file.
error_code parse_profile_file(std::string_view text, profile_file_kind kind,
                              std::string_view display, profile_map& out, diagnostics& diag);

struct loaded_profile {
    std::string name;
    bool explicitly_selected = false;  // passed in or AWS_PROFILE, not the implicit default
    bool found = false;
    std::map<std::string, profile_property> properties;  // config merged under credentials
    std::string credentials_display;  // "~/.aws/credentials" or the overriding path
    std::string config_display;       // "~/.aws/config" or the overriding path
    std::string found_in;             // the file(s) holding the profile's section
};

// Selects the profile and loads both files. Missing default files are no error; a file named
// by AWS_SHARED_CREDENTIALS_FILE/AWS_CONFIG_FILE that does not exist, an unreadable or a
// malformed file are. `any_file` says whether at least one file exists.
error_code load_profile(const env_lookup& env, std::string_view profile, loaded_profile& out,
                        bool& any_file, diagnostics& diag);

// ---- web identity --------------------------------------------------------------------------

struct web_identity_settings {
    std::string role_arn;
    std::string token_file;
    std::string session_name;  // empty: generated
    std::string sts_region;    // empty: global endpoint unless an endpoint override applies
    std::string sts_endpoint;  // AWS_ENDPOINT_URL_STS, when set
    std::string source;        // timed_credentials::source for what it returns
};

// Validates the settings (role ARN shape, session name) into `diag`.
error_code check_web_identity_settings(const web_identity_settings& s, std::string_view origin,
                                       diagnostics& diag);

// One AssumeRoleWithWebIdentity exchange.
boost::asio::awaitable<error_code> assume_role_with_web_identity(const web_identity_settings& s,
                                                                 const http_fetcher& fetcher,
                                                                 const clock_function& clock,
                                                                 timed_credentials& out,
                                                                 diagnostics& diag);

// The STS URL for a region (or the global one) and an optional override.
std::string sts_url(std::string_view region, std::string_view endpoint_override);

}  // namespace penne::s3::detail
