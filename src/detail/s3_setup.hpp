#pragma once
// Library-internal (not installed): builds the S3 client, its credentials chain and the
// destination's upload options from [s3] and the standard AWS environment, for
// penne::pipeline and the `penne s3` tools alike, so both reach the bucket the same way.

#include <penne/config.hpp>

#include <penne/http/client.hpp>
#include <penne/s3/client.hpp>
#include <penne/s3/credentials.hpp>
#include <penne/s3/requests.hpp>

#include <boost/asio/any_io_executor.hpp>

#include <memory>
#include <string>

namespace penne::detail {

struct s3_setup {
    // Declared in dependency order: the chain's fetcher uses credentials_http.
    std::unique_ptr<http::client> credentials_http;
    std::shared_ptr<s3::credentials_chain> credentials;
    std::shared_ptr<s3::client> client;
    s3::put_options put;  // storage class, SSE, tags, metadata
    std::string region;
    std::string endpoint;  // as configured or resolved (no secrets in it)
};

// false with `error` naming the key to fix.
bool make_s3(const s3_settings& cfg, boost::asio::any_io_executor ex, s3::env_lookup env,
             s3_setup& out, std::string& error);

}  // namespace penne::detail
