#include "detail/s3_setup.hpp"

namespace penne::detail {

bool make_s3(const s3_settings& cfg, boost::asio::any_io_executor ex, s3::env_lookup env,
             s3_setup& out, std::string& error) {
    out.region = cfg.region;
    if (out.region.empty())
        out.region = s3::resolve_region(env, cfg.profile).value_or("us-east-1");
    out.endpoint = cfg.endpoint;
    if (out.endpoint.empty())
        out.endpoint = s3::resolve_endpoint_url(env, cfg.profile).value_or("");
    if (out.endpoint.empty())
        out.endpoint = s3::default_endpoint(out.region);

    s3::client_config cc;
    diagnostics diag;
    const auto style = cfg.addressing == "path"      ? s3::addressing::path
                       : cfg.addressing == "virtual" ? s3::addressing::virtual_hosted
                                                     : s3::addressing::automatic;
    if (auto ec = s3::parse_endpoint(out.endpoint, out.region, style, cc.ep, diag)) {
        error = "s3.endpoint: " + diag.message;
        return false;
    }
    if (!cfg.bucket.empty()) {
        if (auto ec = s3::validate_bucket_name(cfg.bucket, diag)) {
            error = "s3.bucket: " + diag.message;
            return false;
        }
    }
    cc.http.connect_timeout = cfg.connect_timeout;
    cc.http.request_timeout = cfg.request_timeout;
    cc.http.ca_file = cfg.ca_file;
    cc.http.verify_peer = cfg.verify_tls;
    cc.retry.max_attempts = cfg.max_retries;
    cc.unsigned_payload = cfg.unsigned_payload;
    cc.multipart_threshold = cfg.multipart_threshold;
    cc.part_size = cfg.part_size;
    cc.part_concurrency = cfg.part_concurrency;
    if (auto ec = s3::validate(cc, diag)) {
        error = diag.message;
        return false;
    }

    out.put.storage_class = cfg.storage_class;
    out.put.sse = cfg.sse == "AES256"    ? s3::sse_mode::s3
                  : cfg.sse == "aws:kms" ? s3::sse_mode::kms
                                         : s3::sse_mode::none;
    out.put.kms_key_id = cfg.kms_key_id;
    out.put.tags = cfg.tags;
    out.put.metadata = cfg.metadata;
    out.put.content_md5 = cfg.content_md5;
    if (auto ec = s3::validate(out.put, diag)) {
        error = "s3: " + diag.message;
        return false;
    }

    // Credentials: the configured keys, else the AWS chain (environment, profile, web
    // identity, ECS, EC2 instance metadata) with its own short-timeout HTTP client.
    http::client_options ho;
    ho.connect_timeout = std::chrono::milliseconds(2'000);
    ho.request_timeout = std::chrono::milliseconds(5'000);
    ho.ca_file = cfg.ca_file;
    out.credentials_http = std::make_unique<http::client>(ex, ho);
    if (!cfg.access_key_id.empty()) {
        std::vector<std::unique_ptr<s3::credentials_provider>> providers;
        providers.push_back(s3::make_static_provider(
            {cfg.access_key_id, cfg.secret_access_key, cfg.session_token}));
        out.credentials = std::make_shared<s3::credentials_chain>(ex, std::move(providers));
    } else {
        s3::chain_options co;
        co.profile = cfg.profile;
        co.sts_region = out.region;
        out.credentials =
            std::make_shared<s3::credentials_chain>(s3::credentials_chain::default_chain(
                ex, co, std::move(env), s3::make_fetcher(*out.credentials_http)));
    }
    out.client = std::make_shared<s3::client>(ex, cc, out.credentials);
    return true;
}

}  // namespace penne::detail
