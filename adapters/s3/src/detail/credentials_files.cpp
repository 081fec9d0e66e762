// The AWS shared files (~/.aws/credentials, ~/.aws/config): parsing, profile selection, the
// profile credentials provider and the region/endpoint resolution built on them. The rules
// are listed in credentials.hpp.
#include "credentials_detail.hpp"

#include <utility>

namespace penne::s3 {

namespace asio = boost::asio;

namespace detail {

namespace {

error_code malformed(diagnostics& diag, std::string_view display, std::size_t line,
                     std::string_view what) {
    // Never quote the line: it may hold a secret.
    diag.message =
        std::string(display) + " line " + std::to_string(line) + ": " + std::string(what);
    return make_error_code(credentials_errc::file_malformed);
}

// A value's trailing comment starts at a '#' or ';' that follows a space or a tab.
std::string_view strip_inline_comment(std::string_view v) {
    for (std::size_t i = 1; i < v.size(); ++i) {
        if ((v[i] == '#' || v[i] == ';') && (v[i - 1] == ' ' || v[i - 1] == '\t'))
            return trim(v.substr(0, i));
    }
    return v;
}

bool starts_with_profile_keyword(std::string_view name, std::string_view& rest) {
    constexpr std::string_view kw = "profile";
    if (name.size() <= kw.size() || name.substr(0, kw.size()) != kw)
        return false;
    if (name[kw.size()] != ' ' && name[kw.size()] != '\t')
        return false;
    rest = trim(name.substr(kw.size()));
    return true;
}

}  // namespace

error_code parse_profile_file(std::string_view text, profile_file_kind kind,
                              std::string_view display, profile_map& out, diagnostics& diag) {
    if (text.substr(0, 3) == "\xEF\xBB\xBF")
        text.remove_prefix(3);  // UTF-8 byte order mark (Windows editors)
    std::map<std::string, profile_property>* section = nullptr;
    bool in_section = false;  // false before the first header
    profile_property* last = nullptr;
    bool continuing_ignored = false;  // the last property was in an ignored section
    std::size_t line_no = 0;
    while (!text.empty()) {
        const auto nl = text.find('\n');
        std::string_view raw = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        ++line_no;
        const std::string_view line = trim(raw);
        if (line.empty() || line[0] == '#' || line[0] == ';')
            continue;
        const bool indented = raw[0] == ' ' || raw[0] == '\t';

        if (line[0] == '[') {
            const auto close = line.find(']');
            if (close == std::string_view::npos)
                return malformed(diag, display, line_no, "a section header without ']'");
            const auto after = trim(line.substr(close + 1));
            if (!after.empty() && after[0] != '#' && after[0] != ';')
                return malformed(diag, display, line_no, "text after a section header");
            const auto name = trim(line.substr(1, close - 1));
            if (name.empty())
                return malformed(diag, display, line_no, "an empty section name");
            in_section = true;
            last = nullptr;
            continuing_ignored = false;
            std::string_view profile;
            if (kind == profile_file_kind::credentials) {
                profile = name;
            } else if (name == "default") {
                profile = name;
            } else if (std::string_view rest; starts_with_profile_keyword(name, rest)) {
                if (rest.empty())
                    return malformed(diag, display, line_no, "a [profile] without a name");
                profile = rest;
            }
            if (profile.empty()) {
                section = nullptr;  // sso-session, services, …: not profiles
            } else {
                auto it = out.find(profile);
                if (it == out.end())
                    it =
                        out.emplace(std::string(profile), std::map<std::string, profile_property>{})
                            .first;
                section = &it->second;
            }
            continue;
        }

        if (indented && (last || continuing_ignored)) {
            // Continuation of the property above (a nested block such as `s3 =`).
            if (last) {
                last->value += '\n';
                last->value += strip_inline_comment(line);
            }
            continue;
        }
        if (!in_section)
            return malformed(diag, display, line_no, "a property before any [section] header");
        const auto eq = line.find('=');
        if (eq == std::string_view::npos)
            return malformed(diag, display, line_no,
                             "expected `name = value`, a [section] header or a comment");
        const auto key = trim(line.substr(0, eq));
        if (key.empty())
            return malformed(diag, display, line_no, "a property without a name");
        if (!section) {
            last = nullptr;
            continuing_ignored = true;
            continue;
        }
        auto& prop = (*section)[lowercase(key)];
        prop.value = std::string(strip_inline_comment(trim(line.substr(eq + 1))));
        prop.file = std::string(display);
        last = &prop;
        continuing_ignored = false;
    }
    return {};
}

namespace {

struct file_spec {
    std::string path;     // empty: no candidate (HOME unset)
    std::string display;  // for messages
    bool must_exist = false;
    std::string variable;  // the environment variable that named it, if any
};

file_spec locate(const env_lookup& env, std::string_view variable, std::string_view default_rel,
                 const std::optional<std::string>& home) {
    file_spec f;
    if (auto v = get_env(env, variable)) {
        f.display = *v;
        f.variable = std::string(variable);
        f.must_exist = true;
        if (v->size() >= 2 && (*v)[0] == '~' && (*v)[1] == '/' && home)
            f.path = *home + v->substr(1);
        else
            f.path = *v;
        return f;
    }
    f.display = "~/" + std::string(default_rel);
    if (home)
        f.path = *home + "/" + std::string(default_rel);
    return f;
}

// Reads and parses one file into `map`; `exists` reports whether it was there.
error_code load_file(const file_spec& f, profile_file_kind kind, profile_map& map, bool& exists,
                     diagnostics& diag) {
    exists = false;
    if (f.path.empty())
        return {};
    std::string text;
    bool missing = false;
    const auto what =
        kind == profile_file_kind::credentials ? "AWS shared credentials file" : "AWS config file";
    if (auto ec = read_file(f.path, what, text, diag, &missing)) {
        if (missing && !f.must_exist) {
            diag.clear();
            return {};
        }
        if (missing)
            diag.message = f.variable + " names " + f.path + ", which does not exist";
        return ec;
    }
    exists = true;
    return parse_profile_file(text, kind, f.display, map, diag);
}

}  // namespace

error_code load_profile(const env_lookup& env, std::string_view profile, loaded_profile& out,
                        bool& any_file, diagnostics& diag) {
    out = {};
    any_file = false;
    if (!profile.empty()) {
        out.name = std::string(profile);
        out.explicitly_selected = true;
    } else if (auto p = get_env(env, "AWS_PROFILE")) {
        out.name = *p;
        out.explicitly_selected = true;
    } else {
        out.name = "default";
    }
    const auto home = get_env(env, "HOME");
    const auto creds_file = locate(env, "AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials", home);
    const auto config_file = locate(env, "AWS_CONFIG_FILE", ".aws/config", home);
    out.credentials_display = creds_file.display;
    out.config_display = config_file.display;

    profile_map config_map, creds_map;
    bool config_exists = false, creds_exists = false;
    if (auto ec =
            load_file(config_file, profile_file_kind::config, config_map, config_exists, diag))
        return ec;
    if (auto ec =
            load_file(creds_file, profile_file_kind::credentials, creds_map, creds_exists, diag))
        return ec;
    any_file = config_exists || creds_exists;
    if (auto it = config_map.find(out.name); it != config_map.end()) {
        out.found = true;
        out.found_in = config_file.display;
        out.properties = it->second;
    }
    if (auto it = creds_map.find(out.name); it != creds_map.end()) {
        out.found = true;
        out.found_in =
            out.found_in.empty() ? creds_file.display : creds_file.display + " and " + out.found_in;
        for (auto& [k, v] : it->second)
            out.properties[k] = v;
    }
    return {};
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// The profile provider.

namespace {

const detail::profile_property* find_prop(const detail::loaded_profile& p, std::string_view key) {
    auto it = p.properties.find(std::string(key));
    if (it == p.properties.end() || it->second.value.empty())
        return nullptr;
    return &it->second;
}

class profile_provider final : public credentials_provider {
public:
    profile_provider(env_lookup env, std::string profile, http_fetcher fetcher,
                     clock_function clock, std::string sts_region)
        : env_(std::move(env)),
          profile_(std::move(profile)),
          fetcher_(std::move(fetcher)),
          clock_(std::move(clock)),
          sts_region_(std::move(sts_region)) {}

    asio::awaitable<error_code> fetch(timed_credentials& out, diagnostics& diag) override {
        detail::loaded_profile p;
        bool any_file = false;
        if (auto ec = detail::load_profile(env_, profile_, p, any_file, diag))
            co_return ec;
        const std::string who = "profile " + p.name;
        if (!p.found) {
            if (!p.explicitly_selected) {
                diag.message = any_file ? "no [default] profile in " + p.credentials_display +
                                              " or " + p.config_display
                                        : "neither " + p.credentials_display + " nor " +
                                              p.config_display + " exists";
                co_return make_error_code(credentials_errc::not_configured);
            }
            diag.message =
                who + " (selected by " +
                (profile_.empty() ? std::string("AWS_PROFILE") : std::string("the configuration")) +
                ") is in neither " + p.credentials_display + " nor " + p.config_display;
            co_return make_error_code(credentials_errc::profile_not_found);
        }
        const std::string& where = p.found_in;

        const auto* id = find_prop(p, "aws_access_key_id");
        const auto* secret = find_prop(p, "aws_secret_access_key");
        if (id || secret) {
            if (!id || !secret) {
                diag.message = who + " in " + (id ? id->file : secret->file) + " has " +
                               (id ? "aws_access_key_id but no aws_secret_access_key"
                                   : "aws_secret_access_key but no aws_access_key_id");
                co_return make_error_code(credentials_errc::invalid_configuration);
            }
            const auto* token = find_prop(p, "aws_session_token");
            out.creds.access_key_id = id->value;
            out.creds.secret_access_key = secret->value;
            out.creds.session_token = token ? token->value : std::string();
            out.expiration.reset();
            out.source = who + " (" + id->file + ")";
            co_return error_code{};
        }

        const auto* role = find_prop(p, "role_arn");
        const auto* token_file = find_prop(p, "web_identity_token_file");
        if (role && token_file) {
            if (!fetcher_) {
                diag.message = who + " in " + role->file +
                               " assumes a role with a web identity token, but this provider "
                               "was given no HTTP client for STS";
                co_return make_error_code(credentials_errc::invalid_configuration);
            }
            detail::web_identity_settings s;
            s.role_arn = role->value;
            s.token_file = token_file->value;
            if (s.token_file.size() >= 2 && s.token_file[0] == '~' && s.token_file[1] == '/') {
                if (auto home = detail::get_env(env_, "HOME"))
                    s.token_file = *home + s.token_file.substr(1);
            }
            if (const auto* name = find_prop(p, "role_session_name"))
                s.session_name = name->value;
            else if (auto env_name = detail::get_env(env_, "AWS_ROLE_SESSION_NAME"))
                s.session_name = *env_name;
            if (!sts_region_.empty()) {
                s.sts_region = sts_region_;
            } else if (auto r = detail::get_env(env_, "AWS_REGION")) {
                s.sts_region = *r;
            } else if (auto r2 = detail::get_env(env_, "AWS_DEFAULT_REGION")) {
                s.sts_region = *r2;
            } else if (const auto* pr = find_prop(p, "region")) {
                s.sts_region = pr->value;
            }
            if (auto ep = detail::get_env(env_, "AWS_ENDPOINT_URL_STS"))
                s.sts_endpoint = *ep;
            s.source = who + " (web identity, " + role->file + ")";
            if (auto ec = detail::check_web_identity_settings(s, who + " in " + role->file, diag))
                co_return ec;
            auto ec =
                co_await detail::assume_role_with_web_identity(s, fetcher_, clock_, out, diag);
            co_return ec;
        }
        if (token_file) {
            diag.message =
                who + " in " + token_file->file + " has web_identity_token_file but no role_arn";
            co_return make_error_code(credentials_errc::invalid_configuration);
        }
        if (role) {
            diag.message = who + " in " + role->file +
                           " assumes a role through source_profile or credential_source, which "
                           "penne does not support; give the profile aws_access_key_id and "
                           "aws_secret_access_key or web_identity_token_file, or run with the "
                           "role attached to the instance, task or pod";
            co_return make_error_code(credentials_errc::invalid_configuration);
        }
        if (const auto* proc = find_prop(p, "credential_process")) {
            diag.message = who + " in " + proc->file +
                           " uses credential_process, which penne does not run; export the "
                           "process's credentials as AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/"
                           "AWS_SESSION_TOKEN instead";
            co_return make_error_code(credentials_errc::invalid_configuration);
        }
        const auto* sso = find_prop(p, "sso_session");
        if (!sso)
            sso = find_prop(p, "sso_start_url");
        if (sso) {
            diag.message = who + " in " + sso->file +
                           " uses IAM Identity Center (SSO), which penne does not support; "
                           "export credentials (aws configure export-credentials) instead";
            co_return make_error_code(credentials_errc::invalid_configuration);
        }
        diag.message = who + " in " + where +
                       " has no credentials (aws_access_key_id and aws_secret_access_key, or "
                       "role_arn with web_identity_token_file)";
        co_return make_error_code(p.explicitly_selected ? credentials_errc::invalid_configuration
                                                        : credentials_errc::not_configured);
    }
    std::string_view name() const noexcept override { return "shared profile"; }

private:
    env_lookup env_;
    std::string profile_;
    http_fetcher fetcher_;
    clock_function clock_;
    std::string sts_region_;
};

}  // namespace

std::unique_ptr<credentials_provider> make_profile_provider(env_lookup env, std::string profile,
                                                            http_fetcher fetcher,
                                                            clock_function clock,
                                                            std::string sts_region) {
    return std::make_unique<profile_provider>(std::move(env), std::move(profile),
                                              std::move(fetcher), std::move(clock),
                                              std::move(sts_region));
}

// ---------------------------------------------------------------------------------------------
// Region and endpoint.

namespace {

std::optional<std::string> profile_value(const env_lookup& env, std::string_view profile,
                                         std::string_view key) {
    detail::loaded_profile p;
    bool any_file = false;
    diagnostics ignored;
    if (detail::load_profile(env, profile, p, any_file, ignored) || !p.found)
        return std::nullopt;
    if (const auto* v = find_prop(p, key))
        return v->value;
    return std::nullopt;
}

}  // namespace

std::optional<std::string> resolve_region(const env_lookup& env, std::string_view profile) {
    if (auto r = detail::get_env(env, "AWS_REGION"))
        return r;
    if (auto r = detail::get_env(env, "AWS_DEFAULT_REGION"))
        return r;
    return profile_value(env, profile, "region");
}

std::optional<std::string> resolve_endpoint_url(const env_lookup& env, std::string_view profile) {
    if (auto ignore = detail::get_env(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
        ignore && detail::iequals(detail::trim(*ignore), "true"))
        return std::nullopt;
    if (auto e = detail::get_env(env, "AWS_ENDPOINT_URL_S3"))
        return e;
    if (auto e = detail::get_env(env, "AWS_ENDPOINT_URL"))
        return e;
    return profile_value(env, profile, "endpoint_url");
}

}  // namespace penne::s3
