#include <penne/s3/client.hpp>

#include <penne/http/sigv4.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <functional>
#include <mutex>
#include <optional>

namespace penne::s3 {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t min_part_size = 5 * 1024 * 1024;
constexpr std::size_t max_part_size = std::size_t{5} * 1024 * 1024 * 1024;
constexpr std::size_t max_parts = 10'000;

std::string describe_network(const error_code& ec, std::string_view operation,
                             const diagnostics& inner) {
    std::string out(operation);
    out += " failed: ";
    out += inner.message.empty() ? ec.message() : inner.message;
    return out;
}

}  // namespace

error_code validate(const client_config& cfg, diagnostics& diag) {
    if (cfg.ep.host.empty()) {
        diag.message = "s3.endpoint: no host";
        return make_error_code(errc::invalid_config);
    }
    if (cfg.part_size < min_part_size || cfg.part_size > max_part_size) {
        diag.message = "s3.part_size must be between 5 MiB and 5 GiB (S3's limits for a part)";
        return make_error_code(errc::invalid_config);
    }
    if (cfg.multipart_threshold < cfg.part_size) {
        diag.message = "s3.multipart_threshold must be at least s3.part_size";
        return make_error_code(errc::invalid_config);
    }
    if (cfg.part_concurrency == 0 || cfg.part_concurrency > 64) {
        diag.message = "s3.part_concurrency must be between 1 and 64";
        return make_error_code(errc::invalid_config);
    }
    return {};
}

struct client::impl {
    executor_type ex;
    client_config cfg;
    std::shared_ptr<credentials_chain> creds;
    http::client http;
    http::sigv4_signer signer;
    std::atomic<std::int64_t> offset_ms{0};
    std::mutex rng_mutex;
    std::uint64_t seed = std::random_device{}();
    struct atomic_counts {
        std::atomic<std::uint64_t> throttled{0}, server_error{0}, network{0}, timeout{0},
            clock_skew{0}, expired_credentials{0};
    } counts;

    impl(executor_type e, client_config c, std::shared_ptr<credentials_chain> cr)
        : ex(e),
          cfg(std::move(c)),
          creds(std::move(cr)),
          http(e, cfg.http),
          signer(http::sigv4_options::s3(cfg.ep.region.empty() ? "us-east-1" : cfg.ep.region)) {}

    std::chrono::system_clock::time_point local_now() const {
        return cfg.clock ? cfg.clock() : std::chrono::system_clock::now();
    }
    std::chrono::system_clock::time_point now() const {
        return local_now() + std::chrono::milliseconds(offset_ms.load(std::memory_order_relaxed));
    }

    // Detached (updates go nowhere) until set_metrics().
    counter_family requests_metric;
    counter_family retries_metric;

    void count_retry(std::string_view operation, const error_code& ec) {
        std::string_view reason = retry_reason(ec);
        if (reason == "throttled")
            counts.throttled.fetch_add(1, std::memory_order_relaxed);
        else if (reason == "server_error")
            counts.server_error.fetch_add(1, std::memory_order_relaxed);
        else if (reason == "timeout")
            counts.timeout.fetch_add(1, std::memory_order_relaxed);
        else if (reason == "clock_skew")
            counts.clock_skew.fetch_add(1, std::memory_order_relaxed);
        else if (reason == "expired_credentials")
            counts.expired_credentials.fetch_add(1, std::memory_order_relaxed);
        else {
            counts.network.fetch_add(1, std::memory_order_relaxed);
            reason = "network";  // the label's values stay the documented few
        }
        retries_metric.with({operation, reason}).inc();
    }

    void count_request(std::string_view operation, const error_code& ec) {
        std::string_view outcome = "ok";
        if (ec == asio::error::operation_aborted || ec == errc::cancelled)
            outcome = "cancelled";
        else if (ec)
            outcome = is_retryable(ec) ? "retries_exhausted" : "rejected";
        requests_metric.with({operation, outcome}).inc();
    }

    backoff make_backoff() {
        std::lock_guard lock(rng_mutex);
        return backoff(cfg.retry, seed++);
    }

    // Waits the backoff's next delay; false when cancelled meanwhile.
    asio::awaitable<bool> pause(backoff& retry) {
        asio::steady_timer timer(ex);
        timer.expires_after(retry.next_delay());
        auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        co_return !ec;
    }

    // One S3 request with the retries described in client.hpp. `body` overrides req.body
    // when not null (large bodies stay in the caller's buffer).
    asio::awaitable<error_code> execute(std::string_view operation, std::string_view bucket,
                                        const request& req, const std::string_view* body,
                                        not_found_means not_found, http::response& res,
                                        diagnostics& diag) {
        auto ec = co_await attempts(operation, bucket, req, body, not_found, res, diag);
        count_request(operation, ec);
        co_return ec;
    }
    asio::awaitable<error_code> attempts(std::string_view operation, std::string_view bucket,
                                         const request& req, const std::string_view* body,
                                         not_found_means not_found, http::response& res,
                                         diagnostics& diag);
};

asio::awaitable<error_code> client::impl::attempts(std::string_view operation,
                                                   std::string_view bucket, const request& req,
                                                   const std::string_view* body_override,
                                                   not_found_means not_found, http::response& res,
                                                   diagnostics& diag) {
    const std::string_view body = body_override ? *body_override : std::string_view(req.body);
    const bool unsigned_payload = cfg.unsigned_payload && req.tls;
    // Hashing a large body is the expensive part of signing: once per request, not per try.
    const std::string payload_hash =
        unsigned_payload ? std::string(http::unsigned_payload_hash) : http::sha256_hex(body);
    auto retry = make_backoff();
    bool refreshed_credentials = false;
    bool corrected_clock = false;
    const auto timeout =
        cfg.http.request_timeout + std::chrono::milliseconds(body.size() / 1024);  // ≥ 1 MB/s
    for (;;) {
        diag.clear();
        http::credentials current;
        auto cec = co_await creds->get(current, diag);
        if (cec) {
            diag.message = std::string(operation) + ": no usable credentials: " + diag.message;
            co_return cec;
        }
        std::vector<http::header_view> views;
        views.reserve(req.headers.size() + 2);
        views.push_back({"Host", req.host_header});
        for (const auto& h : req.headers)
            views.push_back({h.name, h.value});
        http::sigv4_request sreq;
        sreq.method = req.method;
        sreq.target = req.target;
        sreq.headers = views;
        sreq.payload_sha256 = payload_hash;
        http::sigv4_signed_headers signed_headers;
        auto sec = signer.sign(sreq, current, now(), signed_headers, diag);
        if (sec) {
            diag.message = std::string(operation) + ": cannot sign the request: " + diag.message;
            co_return sec;
        }
        std::vector<http::header_field> fields;
        fields.reserve(views.size() + signed_headers.headers.size());
        fields.push_back({"Host", req.host_header});
        for (const auto& h : req.headers)
            fields.push_back(h);
        for (auto& h : signed_headers.headers)
            fields.push_back(std::move(h));

        http::request hreq;
        hreq.endpoint = {req.tls, req.connect_host, req.port};
        hreq.method = req.method;
        hreq.target = req.target;
        hreq.headers = fields;
        hreq.body = body;
        hreq.timeout = timeout;
        diagnostics hdiag;
        auto ec = co_await http.send(hreq, res, hdiag);
        if (ec) {
            if (ec == asio::error::operation_aborted) {
                diag.message = std::string(operation) + " cancelled";
                co_return ec;
            }
            if (retry.should_retry(ec)) {
                count_retry(operation, ec);
                const bool waited = co_await pause(retry);
                if (!waited) {
                    diag.message = std::string(operation) + " cancelled";
                    co_return asio::error::operation_aborted;
                }
                continue;
            }
            diag.message = describe_network(ec, operation, hdiag);
            co_return ec;
        }
        if (res.status >= 200 && res.status < 300)
            co_return error_code{};

        s3_error_info info;
        response_hints hints;
        hints.not_found = not_found;
        hints.bucket_region = res.header("x-amz-bucket-region");
        hints.request_id = res.header("x-amz-request-id");
        hints.host_id = res.header("x-amz-id-2");
        auto serr = parse_error_response(res.status, res.body, info, hints);
        if (serr == s3_errc::request_time_too_skewed && !corrected_clock) {
            // Sign with the server's clock from now on (its Date header, else <ServerTime>).
            std::chrono::system_clock::time_point server_now;
            const bool known = parse_http_date(res.header("Date"), server_now) ||
                               parse_iso8601(info.server_time, server_now);
            if (known) {
                const auto skew =
                    std::chrono::duration_cast<std::chrono::milliseconds>(server_now - local_now());
                offset_ms.store(skew.count(), std::memory_order_relaxed);
                corrected_clock = true;
                count_retry(operation, serr);
                continue;
            }
        }
        if ((serr == s3_errc::expired_token || serr == s3_errc::invalid_access_key_id) &&
            !refreshed_credentials) {
            // Credentials rotated under us: fetch fresh ones once before calling it fatal.
            creds->invalidate();
            refreshed_credentials = true;
            count_retry(operation, make_error_code(s3_errc::expired_token));
            continue;
        }
        if (retry.should_retry(serr)) {
            count_retry(operation, serr);
            const bool waited = co_await pause(retry);
            if (!waited) {
                diag.message = std::string(operation) + " cancelled";
                co_return asio::error::operation_aborted;
            }
            continue;
        }
        diag.message = describe(info, operation, bucket);
        co_return serr;
    }
}

client::client(executor_type ex, client_config cfg, std::shared_ptr<credentials_chain> creds)
    : impl_(std::make_unique<impl>(std::move(ex), std::move(cfg), std::move(creds))) {}

client::~client() = default;

const client_config& client::config() const noexcept {
    return impl_->cfg;
}
http::client& client::http() noexcept {
    return impl_->http;
}

std::chrono::milliseconds client::clock_offset() const noexcept {
    return std::chrono::milliseconds(impl_->offset_ms.load(std::memory_order_relaxed));
}

void client::set_metrics(metrics_registry& reg) {
    impl_->requests_metric =
        reg.counters("penne_s3_requests_total",
                     "S3 requests by API operation and outcome, internal retries included",
                     {"operation", "outcome"});
    impl_->retries_metric = reg.counters(
        "penne_s3_request_retries_total",
        "Attempts the S3 client repeated within one request, by reason", {"operation", "reason"});
}

client::retry_counts client::retries() const noexcept {
    const auto& c = impl_->counts;
    retry_counts out;
    out.throttled = c.throttled.load(std::memory_order_relaxed);
    out.server_error = c.server_error.load(std::memory_order_relaxed);
    out.network = c.network.load(std::memory_order_relaxed);
    out.timeout = c.timeout.load(std::memory_order_relaxed);
    out.clock_skew = c.clock_skew.load(std::memory_order_relaxed);
    out.expired_credentials = c.expired_credentials.load(std::memory_order_relaxed);
    return out;
}

asio::awaitable<error_code> client::upload(std::string_view bucket, std::string_view key,
                                           std::string_view body, const put_options& opts,
                                           put_result& out, diagnostics& diag) {
    if (body.size() >= impl_->cfg.multipart_threshold) {
        auto ec = co_await multipart_upload(bucket, key, body, opts, out, diag);
        co_return ec;
    }
    auto ec = co_await put_object(bucket, key, body, opts, out, diag);
    co_return ec;
}

asio::awaitable<error_code> client::put_object(std::string_view bucket, std::string_view key,
                                               std::string_view body, const put_options& opts,
                                               put_result& out, diagnostics& diag) {
    const auto md5 = opts.content_md5 ? md5_base64(body) : std::string();
    const auto req = s3::put_object(impl_->cfg.ep, bucket, key, opts, md5);
    http::response res;
    auto ec = co_await impl_->execute("PutObject", bucket, req, &body, not_found_means::bucket, res,
                                      diag);
    if (ec)
        co_return ec;
    out.etag = std::string(res.header("ETag"));
    out.parts = 0;
    co_return error_code{};
}

asio::awaitable<error_code> client::multipart_upload(std::string_view bucket, std::string_view key,
                                                     std::string_view body, const put_options& opts,
                                                     put_result& out, diagnostics& diag) {
    using namespace asio::experimental::awaitable_operators;
    auto& d = *impl_;
    const std::size_t part_size =
        std::max<std::size_t>(d.cfg.part_size, (body.size() + max_parts - 1) / max_parts);
    const std::size_t part_count =
        std::max<std::size_t>(1, (body.size() + part_size - 1) / part_size);

    std::string upload_id;
    {
        const auto req = s3::create_multipart_upload(d.cfg.ep, bucket, key, opts);
        http::response res;
        auto ec = co_await d.execute("CreateMultipartUpload", bucket, req, nullptr,
                                     not_found_means::bucket, res, diag);
        if (ec)
            co_return ec;
        auto pec = parse_initiate_multipart(res.body, upload_id, diag);
        if (pec)
            co_return pec;
    }

    struct shared_state {
        std::vector<completed_part> parts;
        std::size_t next = 0;
        error_code first_error;
        diagnostics first_diag;
    } state;
    state.parts.resize(part_count);

    auto worker = [&]() -> asio::awaitable<void> {
        for (;;) {
            if (state.first_error || state.next >= part_count)
                co_return;
            const std::size_t index = state.next++;
            const auto part = body.substr(index * part_size, part_size);
            const int number = static_cast<int>(index + 1);
            const auto md5 = opts.content_md5 ? md5_base64(part) : std::string();
            const auto req = upload_part(d.cfg.ep, bucket, key, upload_id, number, md5);
            http::response res;
            diagnostics pdiag;
            auto ec = co_await d.execute("UploadPart", bucket, req, &part, not_found_means::upload,
                                         res, pdiag);
            if (ec) {
                if (!state.first_error) {
                    state.first_error = ec;
                    state.first_diag = std::move(pdiag);
                }
                co_return;
            }
            state.parts[index] = {number, std::string(res.header("ETag"))};
        }
    };
    // `workers(n)` runs n workers side by side on this coroutine's executor.
    std::function<asio::awaitable<void>(std::size_t)> workers =
        [&](std::size_t n) -> asio::awaitable<void> {
        if (n <= 1) {
            co_await worker();
        } else {
            co_await (worker() && workers(n - 1));
        }
    };
    const auto concurrency = std::min(d.cfg.part_concurrency, part_count);
    co_await asio::this_coro::throw_if_cancelled(false);
    std::exception_ptr failure;
    try {
        co_await workers(concurrency);
    } catch (...) {
        failure = std::current_exception();
    }
    if (!state.first_error && failure)
        state.first_error = asio::error::operation_aborted;

    error_code ec = state.first_error;
    if (!ec) {
        const auto req = complete_multipart_upload(d.cfg.ep, bucket, key, upload_id, state.parts);
        http::response res;
        ec = co_await d.execute("CompleteMultipartUpload", bucket, req, nullptr,
                                not_found_means::upload, res, diag);
        if (!ec) {
            complete_result done;
            s3_error_info err;
            ec = parse_complete_multipart(res.body, done, err, diag);
            if (!ec) {
                out.etag = done.etag;
                out.parts = static_cast<std::uint32_t>(part_count);
                if (out.etag.empty()) {
                    // Some servers (Ceph RGW) leave the ETag out of the reply; ask for it.
                    object_head head;
                    diagnostics hdiag;
                    auto hec = co_await head_object(bucket, key, head, hdiag);
                    if (!hec)
                        out.etag = head.etag;
                }
                co_return error_code{};
            }
            if (!err.code.empty())
                diag.message = describe(err, "CompleteMultipartUpload", bucket);
            else
                diag.message += " (reply begins: " + res.body.substr(0, 300) + ")";
        }
    } else {
        diag = std::move(state.first_diag);
    }
    // Leave no parts behind, also after a cancellation (a fresh cancellation state lets the
    // abort run; its own timeout bounds it).
    co_await asio::this_coro::reset_cancellation_state();
    diagnostics adiag;
    const auto areq = s3::abort_multipart_upload(d.cfg.ep, bucket, key, upload_id);
    http::response ares;
    auto aec = co_await d.execute("AbortMultipartUpload", bucket, areq, nullptr,
                                  not_found_means::upload, ares, adiag);
    if (aec && aec != s3_errc::no_such_upload)
        diag.message += "; aborting the multipart upload also failed: " + adiag.message;
    co_return ec;
}

asio::awaitable<error_code> client::head_bucket(std::string_view bucket, diagnostics& diag) {
    const auto req = s3::head_bucket(impl_->cfg.ep, bucket);
    http::response res;
    auto ec = co_await impl_->execute("HeadBucket", bucket, req, nullptr, not_found_means::bucket,
                                      res, diag);
    co_return ec;
}

asio::awaitable<error_code> client::create_bucket(std::string_view bucket, diagnostics& diag) {
    const auto req = s3::create_bucket(impl_->cfg.ep, bucket, impl_->cfg.ep.region);
    http::response res;
    auto ec = co_await impl_->execute("CreateBucket", bucket, req, nullptr, not_found_means::bucket,
                                      res, diag);
    if (ec == s3_errc::bucket_already_owned_by_you) {
        diag.clear();
        co_return error_code{};
    }
    co_return ec;
}

asio::awaitable<error_code> client::head_object(std::string_view bucket, std::string_view key,
                                                object_head& out, diagnostics& diag) {
    const auto req = s3::head_object(impl_->cfg.ep, bucket, key);
    http::response res;
    auto ec = co_await impl_->execute("HeadObject", bucket, req, nullptr, not_found_means::key, res,
                                      diag);
    if (ec)
        co_return ec;
    out = {};
    const auto length = res.header("Content-Length");
    out.size = length.empty() ? 0 : std::stoull(std::string(length));
    out.etag = std::string(res.header("ETag"));
    out.content_type = std::string(res.header("Content-Type"));
    out.content_encoding = std::string(res.header("Content-Encoding"));
    for (const auto& h : res.headers) {
        if (h.name.size() > 11) {
            std::string lower = h.name;
            std::transform(lower.begin(), lower.end(), lower.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            if (lower.rfind("x-amz-meta-", 0) == 0)
                out.metadata.push_back({lower.substr(11), h.value});
        }
    }
    co_return error_code{};
}

asio::awaitable<error_code> client::get_object(std::string_view bucket, std::string_view key,
                                               std::string& body, diagnostics& diag) {
    const auto req = s3::get_object(impl_->cfg.ep, bucket, key);
    http::response res;
    auto ec =
        co_await impl_->execute("GetObject", bucket, req, nullptr, not_found_means::key, res, diag);
    if (ec)
        co_return ec;
    body = std::move(res.body);
    co_return error_code{};
}

asio::awaitable<error_code> client::delete_object(std::string_view bucket, std::string_view key,
                                                  diagnostics& diag) {
    const auto req = s3::delete_object(impl_->cfg.ep, bucket, key);
    http::response res;
    auto ec = co_await impl_->execute("DeleteObject", bucket, req, nullptr, not_found_means::key,
                                      res, diag);
    co_return ec;
}

asio::awaitable<error_code> client::list_objects(std::string_view bucket, std::string_view prefix,
                                                 std::vector<object_info>& out, diagnostics& diag) {
    out.clear();
    std::string token;
    for (;;) {
        const auto req = list_objects_v2(impl_->cfg.ep, bucket, prefix, token);
        http::response res;
        auto ec = co_await impl_->execute("ListObjectsV2", bucket, req, nullptr,
                                          not_found_means::bucket, res, diag);
        if (ec)
            co_return ec;
        list_result page;
        auto pec = parse_list_objects_v2(res.body, page, diag);
        if (pec)
            co_return pec;
        for (auto& o : page.contents)
            out.push_back(std::move(o));
        if (!page.is_truncated)
            co_return error_code{};
        if (page.next_continuation_token.empty() || page.next_continuation_token == token) {
            diag.message = "ListObjectsV2: a truncated page without a new continuation token";
            co_return make_error_code(s3_errc::malformed_response);
        }
        token = std::move(page.next_continuation_token);
    }
}

asio::awaitable<error_code> client::list_multipart_uploads(std::string_view bucket,
                                                           std::string_view prefix,
                                                           std::vector<upload_info>& out,
                                                           diagnostics& diag) {
    out.clear();
    std::string key_marker, id_marker;
    for (;;) {
        const auto req =
            s3::list_multipart_uploads(impl_->cfg.ep, bucket, prefix, key_marker, id_marker);
        http::response res;
        auto ec = co_await impl_->execute("ListMultipartUploads", bucket, req, nullptr,
                                          not_found_means::bucket, res, diag);
        if (ec)
            co_return ec;
        list_uploads_result page;
        auto pec = parse_list_multipart_uploads(res.body, page, diag);
        if (pec)
            co_return pec;
        for (auto& u : page.uploads)
            out.push_back(std::move(u));
        if (!page.is_truncated)
            co_return error_code{};
        if (page.next_key_marker == key_marker && page.next_upload_id_marker == id_marker) {
            diag.message = "ListMultipartUploads: a truncated page without new markers";
            co_return make_error_code(s3_errc::malformed_response);
        }
        key_marker = std::move(page.next_key_marker);
        id_marker = std::move(page.next_upload_id_marker);
    }
}

asio::awaitable<error_code> client::abort_multipart_upload(std::string_view bucket,
                                                           std::string_view key,
                                                           std::string_view upload_id,
                                                           diagnostics& diag) {
    const auto req = s3::abort_multipart_upload(impl_->cfg.ep, bucket, key, upload_id);
    http::response res;
    auto ec = co_await impl_->execute("AbortMultipartUpload", bucket, req, nullptr,
                                      not_found_means::upload, res, diag);
    co_return ec;
}

asio::awaitable<error_code> client::presign(std::string_view method, std::string_view bucket,
                                            std::string_view key, std::chrono::seconds expires,
                                            std::string& url, diagnostics& diag) {
    auto& d = *impl_;
    auto req = s3::get_object(d.cfg.ep, bucket, key);
    req.method = std::string(method);
    http::credentials current;
    auto cec = co_await d.creds->get(current, diag);
    if (cec)
        co_return cec;
    std::vector<http::header_view> views{{"Host", req.host_header}};
    http::sigv4_request sreq;
    sreq.method = req.method;
    sreq.target = req.target;
    sreq.headers = views;
    http::sigv4_presigned out;
    auto ec = d.signer.presign(sreq, current, d.now(), expires, out, diag);
    if (ec)
        co_return ec;
    url = (req.tls ? "https://" : "http://") + req.host_header + out.target;
    co_return error_code{};
}

http_fetcher make_fetcher(http::client& c) {
    return [&c](const http_fetch_request& freq, http_fetch_response& fres,
                diagnostics& diag) -> asio::awaitable<error_code> {
        http::parsed_url url;
        if (!http::parse_url(freq.url, url)) {
            // The URL is not quoted: an ECS credentials path can work as a key.
            diag.message = "the credentials endpoint is not an http(s) URL";
            co_return make_error_code(http::http_errc::invalid_url);
        }
        std::vector<http::header_field> fields{{"Host", url.host_header}};
        for (const auto& h : freq.headers)
            fields.push_back(h);
        http::request req;
        req.endpoint = {url.tls, url.host, url.port};
        req.method = freq.method;
        req.target = url.target;
        req.headers = fields;
        req.body = freq.body;
        req.timeout = freq.timeout;
        http::response res;
        auto ec = co_await c.send(req, res, diag);
        if (ec)
            co_return ec;
        fres.status = res.status;
        fres.headers = std::move(res.headers);
        fres.body = std::move(res.body);
        co_return error_code{};
    };
}

}  // namespace penne::s3
