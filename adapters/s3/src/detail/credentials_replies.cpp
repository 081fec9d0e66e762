// The reply parsers of the network credential providers (see credentials_replies.hpp): JSON
// through Boost.JSON, XML through pugixml.
#include "credentials_replies.hpp"

#include "credentials_detail.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include <pugixml.hpp>

namespace penne::s3::detail {

using std::chrono::system_clock;

bool parse_credentials_json(std::string_view body, json_credentials& out, std::string& problem) {
    boost::system::error_code jec;
    const boost::json::value v = boost::json::parse(body, jec);
    if (jec) {
        problem = "the reply is not JSON";
        return false;
    }
    const auto* obj = v.if_object();
    if (!obj) {
        problem = "the reply is not a JSON object";
        return false;
    }
    auto str = [&](std::string_view key, std::string& dst, bool required) {
        const auto* f = obj->if_contains(key);
        if (!f || f->is_null()) {
            if (required)
                problem = "the reply has no " + std::string(key);
            return !required;
        }
        const auto* s = f->if_string();
        if (!s) {
            problem = "the reply's " + std::string(key) + " is not a string";
            return false;
        }
        dst.assign(s->data(), s->size());
        if (required && dst.empty()) {
            problem = "the reply's " + std::string(key) + " is empty";
            return false;
        }
        return true;
    };
    std::string expiration;
    if (!str("Code", out.code, false) || !str("AccessKeyId", out.creds.access_key_id, true) ||
        !str("SecretAccessKey", out.creds.secret_access_key, true) ||
        !str("Token", out.creds.session_token, false) || !str("Expiration", expiration, false))
        return false;
    if (!expiration.empty()) {
        system_clock::time_point t;
        if (!parse_iso8601(expiration, t)) {
            problem = "the reply's Expiration is not an ISO 8601 time";
            return false;
        }
        out.expiration = t;
    }
    return true;
}

std::string json_error_summary(std::string_view body, std::string_view secret) {
    boost::system::error_code jec;
    const boost::json::value v = boost::json::parse(body, jec);
    const auto* obj = jec ? nullptr : v.if_object();
    if (!obj)
        return {};
    auto get = [&](std::string_view a, std::string_view b) -> std::string {
        for (auto key : {a, b}) {
            if (const auto* f = obj->if_contains(key); f && f->is_string())
                return std::string(f->as_string().data(), f->as_string().size());
        }
        return {};
    };
    const auto code = get("code", "Code");
    const auto message = get("message", "Message");
    if (code.empty() && message.empty())
        return {};
    // Scrub before shortening: a cut secret would no longer be recognised.
    auto text = code.empty() ? message : (message.empty() ? code : code + ": " + message);
    scrub(text, secret);
    return excerpt(text);
}

bool parse_sts_credentials(std::string_view body, std::string_view origin, sts_credentials& out,
                           std::string& problem) {
    const std::string from = "the reply from " + std::string(origin);
    pugi::xml_document doc;
    if (doc.load_buffer(body.data(), body.size()).status != pugi::status_ok) {
        problem = from + " is not XML";
        return false;
    }
    const auto c = doc.child("AssumeRoleWithWebIdentityResponse")
                       .child("AssumeRoleWithWebIdentityResult")
                       .child("Credentials");
    if (!c) {
        problem = from + " has no AssumeRoleWithWebIdentityResult/Credentials";
        return false;
    }
    // Blank counts as missing: a whitespace-only key would otherwise become an empty one.
    const char* fields[] = {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"};
    for (const char* f : fields) {
        if (trim(c.child_value(f)).empty()) {
            problem = from + " has no Credentials/" + f;
            return false;
        }
    }
    system_clock::time_point expiration;
    if (!parse_iso8601(c.child_value("Expiration"), expiration)) {
        problem = "the reply's Expiration is not an ISO 8601 time";
        return false;
    }
    out.creds.access_key_id = trim(c.child_value("AccessKeyId"));
    out.creds.secret_access_key = trim(c.child_value("SecretAccessKey"));
    out.creds.session_token = trim(c.child_value("SessionToken"));
    out.expiration = expiration;
    return true;
}

sts_error_reply parse_sts_error(std::string_view body, std::string_view secret) {
    sts_error_reply out;
    pugi::xml_document doc;
    if (doc.load_buffer(body.data(), body.size()).status != pugi::status_ok)
        return out;
    const auto err = doc.child("ErrorResponse").child("Error");
    out.code = err.child_value("Code");
    out.message = err.child_value("Message");
    scrub(out.code, secret);
    scrub(out.message, secret);
    return out;
}

}  // namespace penne::s3::detail
