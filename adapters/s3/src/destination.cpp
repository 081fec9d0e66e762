#include <penne/s3/destination.hpp>

#include <boost/asio/this_coro.hpp>

namespace penne::s3 {

namespace asio = boost::asio;

destination::destination(std::shared_ptr<client> c, destination_options opts)
    : client_(std::move(c)), opts_(std::move(opts)) {}

asio::awaitable<error_code> destination::put(const sealed_object& obj, diagnostics& diag) {
    put_options po = opts_.put;
    po.content_type = std::string(obj.content_type);
    po.content_encoding = std::string(obj.content_encoding);
    po.metadata.emplace_back("penne-events", std::to_string(obj.event_count));
    put_result result;
    auto ec = co_await client_->upload(opts_.bucket, obj.key, obj.body, po, result, diag);
    co_return ec;
}

asio::awaitable<error_code> destination::check(diagnostics& diag) {
    auto ec = co_await client_->head_bucket(opts_.bucket, diag);
    if (ec) {
        diag.message = "S3 bucket check failed (" + describe() + "): " + diag.message;
        co_return ec;
    }
    const std::string probe = opts_.probe_prefix + ".penne-write-check";
    put_options po = opts_.put;
    po.content_type = "text/plain";
    po.metadata.clear();
    put_result result;
    ec = co_await client_->put_object(opts_.bucket, probe, "penne write check\n", po, result, diag);
    if (ec) {
        diag.message = "S3 bucket is not writable (" + describe() + ", probe object " + probe +
                       "): " + diag.message;
        co_return ec;
    }
    diagnostics ignored;
    auto dec = co_await client_->delete_object(opts_.bucket, probe, ignored);
    (void)dec;  // a bucket policy may allow writes but no deletes; the probe then stays
    co_return error_code{};
}

std::string destination::describe() const {
    const auto& ep = client_->config().ep;
    std::string out = "s3://" + opts_.bucket + " at " + (ep.tls ? "https://" : "http://") + ep.host;
    const bool default_port = ep.port == (ep.tls ? 443 : 80);
    if (!default_port)
        out += ":" + std::to_string(ep.port);
    if (!ep.region.empty())
        out += " (region " + ep.region + ")";
    return out;
}

}  // namespace penne::s3
