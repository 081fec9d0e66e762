#pragma once
// The parsers of what the network credential providers receive: the JSON credentials document
// of the ECS/EKS container endpoint and of EC2 instance metadata (IMDSv2), the JSON error
// bodies of those endpoints, and STS's AssumeRoleWithWebIdentity reply (XML, success and
// ErrorResponse documents). Pure functions, bytes in and values out, so the providers in
// credentials_remote.cpp, the fuzz target (fuzz/s3) and the unit tests call the same code.
//
// Secrets: a `problem` text never quotes a value from the reply, so it cannot carry a secret
// access key or a session token, whatever the reply holds. The error-document readers quote
// the service's own code and message, with every occurrence of the caller's secret (the
// authorization or web identity token that was sent) replaced first.
//
// Thread safety: none needed (no state). Lifetimes: the outputs own their text; nothing
// refers into `body` after a call returns. Private to adapters/s3/src, fuzz/s3 and
// tests/unit/adapters/s3.

#include <penne/http/sigv4.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace penne::s3::detail {

// ---- ECS and IMDS (JSON) -------------------------------------------------------------------

struct json_credentials {
    std::string code;  // IMDS "Code" ("Success"); empty when absent (ECS)
    http::credentials creds;
    std::optional<std::chrono::system_clock::time_point> expiration;
};

// Reads AccessKeyId and SecretAccessKey (required, non-empty strings), Token, Code and
// Expiration (optional; null counts as absent) from a JSON object. On failure `problem` is a
// sentence starting "the reply" that says what is wrong, and `out` may be partly filled.
bool parse_credentials_json(std::string_view body, json_credentials& out, std::string& problem);

// "code: message" from a JSON error body ({"code","message"} from the ECS agent, or
// {"Code","Message"}), `secret` scrubbed and the text shortened for a message; empty when the
// body is not such an object.
std::string json_error_summary(std::string_view body, std::string_view secret);

// ---- STS AssumeRoleWithWebIdentity (XML) ---------------------------------------------------

struct sts_credentials {
    http::credentials creds;
    std::chrono::system_clock::time_point expiration;
};

// Reads AssumeRoleWithWebIdentityResponse/AssumeRoleWithWebIdentityResult/Credentials from a
// successful (HTTP 200) reply: AccessKeyId, SecretAccessKey, SessionToken and Expiration must
// all be present and non-blank. On failure `problem` says what is wrong, naming `origin` (the
// endpoint asked, for the message) but nothing from the body; `out` is left untouched.
bool parse_sts_credentials(std::string_view body, std::string_view origin, sts_credentials& out,
                           std::string& problem);

// ErrorResponse/Error/Code and Message from an STS error reply, each with every occurrence of
// `secret` replaced and not yet shortened. Both empty when the body is not XML (a proxy's
// HTML page, say) or has no such element.
struct sts_error_reply {
    std::string code;
    std::string message;
};
sts_error_reply parse_sts_error(std::string_view body, std::string_view secret);

}  // namespace penne::s3::detail
