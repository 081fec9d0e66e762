#include <penne/s3/error.hpp>

#include <pugixml.hpp>

#include <charconv>
#include <cstdint>
#include <utility>

namespace penne::s3 {
namespace {

class s3_category_impl final : public classified_category {
public:
    const char* name() const noexcept override { return "penne.s3"; }
    std::string message(int ev) const override {
        switch (static_cast<s3_errc>(ev)) {
            case s3_errc::slow_down:
                return "S3 is throttling requests (slow down)";
            case s3_errc::internal_error:
                return "S3 internal error";
            case s3_errc::service_unavailable:
                return "S3 service unavailable";
            case s3_errc::request_timeout:
                return "S3 timed out waiting for the request";
            case s3_errc::request_time_too_skewed:
                return "request time too skewed from the server's clock";
            case s3_errc::access_denied:
                return "access denied";
            case s3_errc::signature_does_not_match:
                return "request signature does not match";
            case s3_errc::invalid_access_key_id:
                return "access key id or session token not recognised";
            case s3_errc::expired_token:
                return "security token expired";
            case s3_errc::no_such_bucket:
                return "bucket does not exist";
            case s3_errc::no_such_key:
                return "object does not exist";
            case s3_errc::no_such_upload:
                return "multipart upload does not exist";
            case s3_errc::invalid_part:
                return "multipart part not found or ETag mismatch";
            case s3_errc::invalid_part_order:
                return "multipart parts not in ascending order";
            case s3_errc::entity_too_small:
                return "multipart part too small";
            case s3_errc::entity_too_large:
                return "object or part too large";
            case s3_errc::bad_digest:
                return "body digest does not match";
            case s3_errc::invalid_digest:
                return "invalid Content-MD5";
            case s3_errc::invalid_bucket_name:
                return "invalid bucket name";
            case s3_errc::invalid_request:
                return "invalid request";
            case s3_errc::invalid_argument:
                return "invalid argument";
            case s3_errc::permanent_redirect:
                return "bucket must be addressed through another endpoint or region";
            case s3_errc::precondition_failed:
                return "precondition failed";
            case s3_errc::kms_error:
                return "KMS error";
            case s3_errc::other_client_error:
                return "S3 rejected the request";
            case s3_errc::other_server_error:
                return "S3 server error";
            case s3_errc::malformed_response:
                return "malformed S3 response";
            case s3_errc::conflict:
                return "conflicting operation in progress";
            case s3_errc::bucket_already_exists:
                return "bucket name already taken";
            case s3_errc::bucket_already_owned_by_you:
                return "bucket already exists and is owned by you";
            case s3_errc::not_implemented:
                return "operation not implemented by the server";
            case s3_errc::invalid_range:
                return "requested range not satisfiable";
            case s3_errc::invalid_key:
                return "invalid object key";
        }
        return "unknown S3 error";
    }
    bool retryable(int ev) const noexcept override {
        switch (static_cast<s3_errc>(ev)) {
            case s3_errc::slow_down:
            case s3_errc::internal_error:
            case s3_errc::service_unavailable:
            case s3_errc::request_timeout:
            case s3_errc::request_time_too_skewed:
            case s3_errc::expired_token:
            case s3_errc::conflict:
            case s3_errc::other_server_error:
                return true;
            default:
                return false;
        }
    }
};

struct code_entry {
    std::string_view code;
    s3_errc errc;
};

// S3's error codes, plus the throttling and token codes other AWS services (STS-backed
// credentials, S3-compatible gateways) use for the same conditions.
constexpr code_entry known_codes[] = {
    {"SlowDown", s3_errc::slow_down},
    {"Throttling", s3_errc::slow_down},
    {"ThrottlingException", s3_errc::slow_down},
    {"RequestLimitExceeded", s3_errc::slow_down},
    {"TooManyRequests", s3_errc::slow_down},
    {"TooManyRequestsException", s3_errc::slow_down},
    {"RequestThrottled", s3_errc::slow_down},
    {"RequestThrottledException", s3_errc::slow_down},
    {"KMS.ThrottlingException", s3_errc::slow_down},
    {"InternalError", s3_errc::internal_error},
    {"ServiceUnavailable", s3_errc::service_unavailable},
    {"RequestTimeout", s3_errc::request_timeout},
    {"RequestTimeTooSkewed", s3_errc::request_time_too_skewed},
    {"RequestExpired", s3_errc::request_time_too_skewed},
    {"AccessDenied", s3_errc::access_denied},
    {"AllAccessDisabled", s3_errc::access_denied},
    {"AccountProblem", s3_errc::access_denied},
    {"SignatureDoesNotMatch", s3_errc::signature_does_not_match},
    {"InvalidAccessKeyId", s3_errc::invalid_access_key_id},
    {"InvalidToken", s3_errc::invalid_access_key_id},
    {"ExpiredToken", s3_errc::expired_token},
    {"ExpiredTokenException", s3_errc::expired_token},
    {"TokenRefreshRequired", s3_errc::expired_token},
    {"NoSuchBucket", s3_errc::no_such_bucket},
    {"NoSuchKey", s3_errc::no_such_key},
    {"NoSuchUpload", s3_errc::no_such_upload},
    {"InvalidPart", s3_errc::invalid_part},
    {"InvalidPartOrder", s3_errc::invalid_part_order},
    {"EntityTooSmall", s3_errc::entity_too_small},
    {"EntityTooLarge", s3_errc::entity_too_large},
    {"BadDigest", s3_errc::bad_digest},
    {"XAmzContentSHA256Mismatch", s3_errc::bad_digest},
    {"InvalidDigest", s3_errc::invalid_digest},
    {"InvalidBucketName", s3_errc::invalid_bucket_name},
    {"InvalidRequest", s3_errc::invalid_request},
    {"MalformedXML", s3_errc::invalid_request},
    {"InvalidArgument", s3_errc::invalid_argument},
    {"PermanentRedirect", s3_errc::permanent_redirect},
    {"TemporaryRedirect", s3_errc::permanent_redirect},
    {"PreconditionFailed", s3_errc::precondition_failed},
    {"OperationAborted", s3_errc::conflict},
    {"ConditionalRequestConflict", s3_errc::conflict},
    {"NotImplemented", s3_errc::not_implemented},
    {"BucketAlreadyExists", s3_errc::bucket_already_exists},
    {"BucketAlreadyOwnedByYou", s3_errc::bucket_already_owned_by_you},
    {"InvalidRange", s3_errc::invalid_range},
};

s3_errc classify_status(unsigned status, not_found_means not_found) noexcept {
    switch (status) {
        case 301:
        case 302:
        case 307:
        case 308:
            return s3_errc::permanent_redirect;
        case 400:
            return s3_errc::invalid_request;
        case 401:
        case 403:
            return s3_errc::access_denied;
        case 404:
            switch (not_found) {
                case not_found_means::bucket:
                    return s3_errc::no_such_bucket;
                case not_found_means::upload:
                    return s3_errc::no_such_upload;
                case not_found_means::key:
                    break;
            }
            return s3_errc::no_such_key;
        case 408:
            return s3_errc::request_timeout;
        case 409:
            return s3_errc::conflict;
        case 412:
            return s3_errc::precondition_failed;
        case 416:
            return s3_errc::invalid_range;
        case 429:
            return s3_errc::slow_down;
        case 500:
            return s3_errc::internal_error;
        case 501:
            return s3_errc::not_implemented;
        case 503:
            return s3_errc::service_unavailable;
        default:
            break;
    }
    if (status >= 400 && status < 500)
        return s3_errc::other_client_error;
    if (status >= 500 && status < 600)
        return s3_errc::other_server_error;
    return s3_errc::malformed_response;
}

// Element names compared without a namespace prefix ("s3:Code" matches "Code").
std::string_view local_name(const pugi::xml_node& n) {
    std::string_view name = n.name();
    const auto colon = name.find(':');
    return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

pugi::xml_node child(const pugi::xml_node& parent, std::string_view name) {
    for (auto c = parent.first_child(); c; c = c.next_sibling()) {
        if (c.type() == pugi::node_element && local_name(c) == name)
            return c;
    }
    return {};
}

std::string child_text(const pugi::xml_node& parent, std::string_view name) {
    return child(parent, name).text().as_string();
}

// The <Error> element of an S3 error document (or of the <ErrorResponse> wrapper some
// gateways use); empty when the document is something else.
pugi::xml_node find_error_element(const pugi::xml_document& doc) {
    pugi::xml_node root = doc.document_element();
    if (!root)
        return {};
    if (local_name(root) == "Error")
        return root;
    if (local_name(root) == "ErrorResponse")
        return child(root, "Error");
    return {};
}

// S3's message as it may appear in our logs: printable ASCII and UTF-8 kept, control bytes
// dropped, runs of whitespace collapsed, at most max_message bytes (cut on a character
// boundary).
constexpr std::size_t max_message = 300;

std::string sanitize(std::string_view s) {
    std::string out;
    bool space = false;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            space = !out.empty();
            continue;
        }
        if (c < 0x20 || c == 0x7f)
            continue;
        if (space) {
            out += ' ';
            space = false;
        }
        out += ch;
    }
    if (out.size() > max_message) {
        std::size_t cut = max_message;
        while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80)
            --cut;
        out.resize(cut);
        out += "...";
    }
    return out;
}

// The IAM action a denied operation needed.
std::string_view iam_action(std::string_view operation) {
    static constexpr std::pair<std::string_view, std::string_view> actions[] = {
        {"PutObject", "s3:PutObject"},
        {"CreateMultipartUpload", "s3:PutObject"},
        {"UploadPart", "s3:PutObject"},
        {"CompleteMultipartUpload", "s3:PutObject"},
        {"AbortMultipartUpload", "s3:AbortMultipartUpload"},
        {"HeadBucket", "s3:ListBucket"},
        {"ListObjectsV2", "s3:ListBucket"},
        {"ListMultipartUploads", "s3:ListBucketMultipartUploads"},
        {"GetObject", "s3:GetObject"},
        {"HeadObject", "s3:GetObject"},
        {"DeleteObject", "s3:DeleteObject"},
        {"CreateBucket", "s3:CreateBucket"},
    };
    for (const auto& [op, action] : actions) {
        if (op == operation)
            return action;
    }
    return {};
}

std::string quoted(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    out += '"';
    out += s;
    out += '"';
    return out;
}

std::string advice(const s3_error_info& info, s3_errc kind, std::string_view operation,
                   std::string_view bucket) {
    const std::string b = quoted(bucket);
    switch (kind) {
        case s3_errc::slow_down:
            return "S3 is throttling this bucket or prefix; penne backs off and retries. If it "
                   "persists, lower the upload concurrency or spread keys over more prefixes";
        case s3_errc::internal_error:
        case s3_errc::service_unavailable:
        case s3_errc::other_server_error:
            return "the server failed to handle the request; penne retries with backoff. If "
                   "it persists, check the service's health and s3.endpoint";
        case s3_errc::request_timeout:
            return "the server stopped waiting for the request body; penne retries. If it "
                   "persists, check the network throughput to s3.endpoint";
        case s3_errc::request_time_too_skewed: {
            std::string s = "the local clock differs from the server's";
            if (!info.server_time.empty())
                s += " (server time " + sanitize(info.server_time) + ")";
            return s + "; penne corrects the offset and retries, but synchronise the clock (NTP)";
        }
        case s3_errc::access_denied: {
            std::string s = "the credentials lack ";
            const auto action = iam_action(operation);
            s += action.empty() ? std::string_view{"permission for this operation"} : action;
            if (!bucket.empty())
                s += " on bucket " + b;
            return s +
                   "; check the IAM policy, the bucket policy, and any KMS key or "
                   "organization policy that applies";
        }
        case s3_errc::signature_does_not_match:
            return "check the secret access key and that no proxy rewrites the request "
                   "(its path, query or headers)";
        case s3_errc::invalid_access_key_id:
            if (info.code == "InvalidToken")
                return "check the session token: it does not belong to the access key id";
            return "check the access key id: this endpoint does not know it (wrong account, "
                   "deleted key, or keys for another S3 service)";
        case s3_errc::expired_token:
            return "the temporary credentials expired; penne refreshes them and retries. If "
                   "it persists, check the credentials source";
        case s3_errc::no_such_bucket:
            return "create bucket " + b + " or fix s3.bucket";
        case s3_errc::no_such_key:
            return "the object does not exist (deleted, or never written)";
        case s3_errc::no_such_upload:
            return "the multipart upload is gone (completed, aborted, or removed by a "
                   "lifecycle rule); the upload starts again";
        case s3_errc::invalid_part:
        case s3_errc::invalid_part_order:
            return "the part list sent to CompleteMultipartUpload does not match the uploaded "
                   "parts; check that no proxy rewrites ETags";
        case s3_errc::entity_too_small:
            return "every multipart part but the last must be at least 5 MiB; raise the part "
                   "size";
        case s3_errc::entity_too_large:
            return "the body exceeds S3's limit (5 GiB for one PUT or part); lower the batch "
                   "size or the part size";
        case s3_errc::bad_digest:
            return "the body S3 received does not match its digest: something altered it in "
                   "transit (a proxy or faulty network)";
        case s3_errc::invalid_digest:
            return "S3 refused the Content-MD5 header; check that no proxy rewrites it";
        case s3_errc::invalid_bucket_name:
            return "bucket name " + b + " is not valid; fix s3.bucket";
        case s3_errc::invalid_request:
        case s3_errc::invalid_argument:
            return "S3 refused a request setting; check the s3 settings (storage class, "
                   "encryption, tags, metadata, endpoint addressing style)";
        case s3_errc::permanent_redirect:
            if (!info.region.empty())
                return "the bucket is in region " + sanitize(info.region) +
                       "; set s3.region = " + sanitize(info.region);
            if (!info.endpoint.empty())
                return "the bucket must be addressed through " + sanitize(info.endpoint) +
                       "; set s3.region to the bucket's region or fix s3.endpoint";
            return "the bucket is in another region; set s3.region to the bucket's region";
        case s3_errc::precondition_failed:
            return "a conditional request failed: the object changed or already exists";
        case s3_errc::kms_error:
            return "server-side encryption with KMS failed; check that the key in "
                   "s3.kms_key_id exists in the bucket's region, is enabled, and that the "
                   "credentials may use it (kms:GenerateDataKey, kms:Decrypt)";
        case s3_errc::other_client_error:
            return "S3 refused the request; check the s3 settings";
        case s3_errc::malformed_response:
            return "the reply is not what S3 sends; check that s3.endpoint points at an S3 "
                   "service and not at a proxy or web page";
        case s3_errc::conflict:
            return "a conflicting operation on the same resource was in progress; penne "
                   "retries";
        case s3_errc::bucket_already_exists:
            return "another account owns bucket " + b + "; choose another s3.bucket";
        case s3_errc::bucket_already_owned_by_you:
            return "bucket " + b + " already exists and is yours";
        case s3_errc::not_implemented:
            return "the server does not implement this operation or one of its headers; turn "
                   "off the feature it needs (encryption, tags, storage class) for this "
                   "endpoint";
        case s3_errc::invalid_range:
            return "the requested byte range lies outside the object";
        case s3_errc::invalid_key:
            return "the object key is not valid; check the key template";
    }
    return "unexpected S3 error";
}

// ---------------------------------------------------------------------------------------------
// Date parsing.

using sys_clock = std::chrono::system_clock;

bool read_digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
    if (pos + n > s.size())
        return false;
    int v = 0;
    for (std::size_t i = 0; i < n; ++i) {
        const char c = s[pos + i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    out = v;
    return true;
}

int month_index(std::string_view m) {
    static constexpr std::string_view months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; ++i) {
        if (months[i] == m)
            return i + 1;
    }
    return 0;
}

bool is_day_name(std::string_view d, bool long_form) {
    static constexpr std::string_view short_names[] = {"Mon", "Tue", "Wed", "Thu",
                                                       "Fri", "Sat", "Sun"};
    static constexpr std::string_view long_names[] = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                                                      "Friday", "Saturday", "Sunday"};
    for (int i = 0; i < 7; ++i) {
        if ((long_form ? long_names[i] : short_names[i]) == d)
            return true;
    }
    return false;
}

// Builds the time point; false when a field is out of range. Second 60 (a leap second) is
// accepted and lands on the next second, as system_clock has no leap seconds.
bool make_time(int y, int mo, int d, int h, int mi, int s, std::chrono::nanoseconds frac,
               sys_clock::time_point& out) {
    using namespace std::chrono;
    if (y < 1700 || y > 2261 || h > 23 || mi > 59 || s > 60)
        return false;
    const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)},
                             day{static_cast<unsigned>(d)}};
    if (!ymd.ok())
        return false;
    const auto t = sys_days{ymd} + hours{h} + minutes{mi} + seconds{s};
    out = time_point_cast<sys_clock::duration>(t) + duration_cast<sys_clock::duration>(frac);
    return true;
}

// "HH:MM:SS" at pos.
bool read_clock(std::string_view s, std::size_t pos, int& h, int& mi, int& sec) {
    return pos + 8 <= s.size() && read_digits(s, pos, 2, h) && s[pos + 2] == ':' &&
           read_digits(s, pos + 3, 2, mi) && s[pos + 5] == ':' && read_digits(s, pos + 6, 2, sec);
}

}  // namespace

const boost::system::error_category& s3_category() noexcept {
    static const s3_category_impl cat;
    return cat;
}

s3_errc classify(unsigned http_status, std::string_view code, bool has_region,
                 not_found_means not_found) noexcept {
    if (!code.empty()) {
        for (const auto& e : known_codes) {
            if (e.code == code)
                return e.errc;
        }
        if (code.starts_with("KMS."))
            return s3_errc::kms_error;
        // The region in the signature's scope is wrong; S3 names the right one.
        if (code == "AuthorizationHeaderMalformed")
            return has_region ? s3_errc::permanent_redirect : s3_errc::invalid_request;
        // A code we do not know inside a 2xx reply (CompleteMultipartUpload failing after S3
        // sent its 200 headers) is a failure on the server's side.
        if (http_status >= 200 && http_status < 300)
            return s3_errc::other_server_error;
    }
    return classify_status(http_status, not_found);
}

error_code parse_error_response(unsigned http_status, std::string_view body, s3_error_info& out) {
    return parse_error_response(http_status, body, out, response_hints{});
}

error_code parse_error_response(unsigned http_status, std::string_view body, s3_error_info& out,
                                const response_hints& hints) {
    out = s3_error_info{};
    out.http_status = http_status;
    if (!body.empty()) {
        pugi::xml_document doc;
        const auto parsed = doc.load_buffer(body.data(), body.size(),
                                            pugi::parse_default | pugi::parse_ws_pcdata_single);
        if (parsed) {
            if (const auto err = find_error_element(doc)) {
                out.code = child_text(err, "Code");
                out.message = child_text(err, "Message");
                out.request_id = child_text(err, "RequestId");
                out.host_id = child_text(err, "HostId");
                out.resource = child_text(err, "Resource");
                out.region = child_text(err, "Region");
                out.server_time = child_text(err, "ServerTime");
                out.endpoint = child_text(err, "Endpoint");
            }
        }
    }
    if (out.request_id.empty())
        out.request_id = hints.request_id;
    if (out.host_id.empty())
        out.host_id = hints.host_id;
    if (out.region.empty())
        out.region = hints.bucket_region;
    out.kind = classify(http_status, out.code, !out.region.empty(), hints.not_found);
    return make_error_code(out.kind);
}

std::string describe(const s3_error_info& info, std::string_view operation,
                     std::string_view bucket) {
    const s3_errc kind = info.kind != s3_errc{}
                             ? info.kind
                             : classify(info.http_status, info.code, !info.region.empty());
    std::string out = operation.empty() ? std::string("S3 request") : std::string(operation);
    if (!bucket.empty())
        out += " on bucket " + quoted(bucket);
    out += " failed: ";
    if (info.http_status != 0) {
        out += "HTTP ";
        out += std::to_string(info.http_status);
    } else {
        out += "no status";
    }
    if (!info.code.empty()) {
        out += ' ';
        out += sanitize(info.code);
    }
    if (!info.message.empty())
        out += " " + quoted(sanitize(info.message));
    out += ": ";
    out += advice(info, kind, operation, bucket);
    if (!info.request_id.empty()) {
        out += " (request id " + sanitize(info.request_id);
        if (!info.host_id.empty())
            out += ", host id " + sanitize(info.host_id);
        out += ')';
    }
    return out;
}

std::string_view retry_reason(const error_code& ec) noexcept {
    if (!ec)
        return "other";
    if (ec.category() == s3_category()) {
        switch (static_cast<s3_errc>(ec.value())) {
            case s3_errc::slow_down:
                return "throttled";
            case s3_errc::internal_error:
            case s3_errc::service_unavailable:
            case s3_errc::other_server_error:
                return "server_error";
            case s3_errc::request_timeout:
                return "timeout";
            case s3_errc::request_time_too_skewed:
                return "clock_skew";
            case s3_errc::expired_token:
                return "expired_credentials";
            default:
                return "other";
        }
    }
    if (ec.category() == penne_category())
        return ec == penne::errc::timeout ? "network" : "other";
    // Transport failures: the operating system's codes and those of Asio, its SSL layer and
    // Beast's HTTP parser (matched by category name to keep Asio out of this file).
    const std::string_view name = ec.category().name();
    if (ec.category() == boost::system::system_category() ||
        ec.category() == boost::system::generic_category() || name.starts_with("asio.") ||
        name == "beast.http" || name == "boost.beast")
        return "network";
    return "other";
}

bool parse_http_date(std::string_view s, sys_clock::time_point& out) {
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    const auto comma = s.find(',');
    if (comma == 3) {
        // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
        if (s.size() != 29 || !is_day_name(s.substr(0, 3), false) || s[4] != ' ' ||
            !read_digits(s, 5, 2, d) || s[7] != ' ' || s[11] != ' ' || !read_digits(s, 12, 4, y) ||
            s[16] != ' ' || !read_clock(s, 17, h, mi, sec) || s.substr(25) != " GMT")
            return false;
        mo = month_index(s.substr(8, 3));
    } else if (comma != std::string_view::npos) {
        // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
        const auto rest = s.substr(comma);
        int yy = 0;
        if (!is_day_name(s.substr(0, comma), true) || rest.size() != 24 || rest[1] != ' ' ||
            !read_digits(rest, 2, 2, d) || rest[4] != '-' || rest[8] != '-' ||
            !read_digits(rest, 9, 2, yy) || rest[11] != ' ' || !read_clock(rest, 12, h, mi, sec) ||
            rest.substr(20) != " GMT")
            return false;
        mo = month_index(rest.substr(5, 3));
        // A two-digit year more than 50 years ahead means the past century (RFC 7231); for
        // the dates an S3 peer sends, that is 70-99 → 1970-1999.
        y = yy >= 70 ? 1900 + yy : 2000 + yy;
    } else {
        // asctime: "Sun Nov  6 08:49:37 1994" (day padded with a space)
        if (s.size() != 24 || !is_day_name(s.substr(0, 3), false) || s[3] != ' ' || s[7] != ' ' ||
            s[10] != ' ' || s[19] != ' ' || !read_clock(s, 11, h, mi, sec) ||
            !read_digits(s, 20, 4, y))
            return false;
        mo = month_index(s.substr(4, 3));
        if (s[8] == ' ') {
            if (!read_digits(s, 9, 1, d))
                return false;
        } else if (!read_digits(s, 8, 2, d)) {
            return false;
        }
    }
    if (mo == 0)
        return false;
    return make_time(y, mo, d, h, mi, sec, std::chrono::nanoseconds{0}, out);
}

bool parse_iso8601(std::string_view s, sys_clock::time_point& out) {
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (s.size() < 20 || !read_digits(s, 0, 4, y) || s[4] != '-' || !read_digits(s, 5, 2, mo) ||
        s[7] != '-' || !read_digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't') ||
        !read_clock(s, 11, h, mi, sec))
        return false;
    std::size_t pos = 19;
    std::int64_t frac_ns = 0;
    if (s[pos] == '.') {
        ++pos;
        std::size_t digits = 0;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
            if (digits < 9)
                frac_ns = frac_ns * 10 + (s[pos] - '0');
            ++digits;
            ++pos;
        }
        if (digits == 0)
            return false;
        for (std::size_t i = digits; i < 9; ++i)
            frac_ns *= 10;
    }
    std::chrono::minutes offset{0};
    const auto zone = s.substr(pos);
    if (zone == "Z" || zone == "z") {
        // UTC
    } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
        int oh = 0, om = 0;
        if (!read_digits(zone, 1, 2, oh) || !read_digits(zone, 4, 2, om) || oh > 23 || om > 59)
            return false;
        offset = std::chrono::minutes{oh * 60 + om};
        if (zone[0] == '-')
            offset = -offset;
    } else {
        return false;
    }
    sys_clock::time_point t;
    if (!make_time(y, mo, d, h, mi, sec, std::chrono::nanoseconds{frac_ns}, t))
        return false;
    out = t - offset;
    return true;
}

}  // namespace penne::s3
