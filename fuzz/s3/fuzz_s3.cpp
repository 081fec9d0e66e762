// Fuzz target for everything in adapters/s3 that reads bytes from the network: S3's error
// XML (with every HTTP status class), the ListObjectsV2, CreateMultipartUpload,
// CompleteMultipartUpload and ListMultipartUploads replies, and the HTTP-date and ISO-8601
// timestamps the client reads from headers and replies. The first input byte selects the
// parser; the rest is the reply body.
//
// Built with clang and -fsanitize=fuzzer it is a libFuzzer target; otherwise fuzz/replay_main.cpp
// replays the files (or directories of files) named on the command line.

#include <penne/s3/error.hpp>
#include <penne/s3/requests.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace penne::s3;
    if (size == 0)
        return 0;
    const std::uint8_t selector = data[0];
    const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
    penne::diagnostics diag;
    switch (selector % 8) {
        case 0: {
            static constexpr unsigned statuses[] = {200, 301, 400, 403, 404, 409, 500, 503};
            s3_error_info info;
            response_hints hints;
            hints.not_found = static_cast<not_found_means>((selector >> 3) % 3);
            (void)parse_error_response(statuses[(selector >> 5) % 8], body, info, hints);
            (void)describe(info, "PutObject", "bucket");
            break;
        }
        case 1: {
            list_result out;
            (void)parse_list_objects_v2(body, out, diag);
            break;
        }
        case 2: {
            std::string upload_id;
            (void)parse_initiate_multipart(body, upload_id, diag);
            break;
        }
        case 3: {
            complete_result out;
            s3_error_info err;
            (void)parse_complete_multipart(body, out, err, diag);
            break;
        }
        case 4: {
            list_uploads_result out;
            (void)parse_list_multipart_uploads(body, out, diag);
            break;
        }
        case 5: {
            std::chrono::system_clock::time_point t;
            (void)parse_http_date(body, t);
            (void)parse_iso8601(body, t);
            break;
        }
        case 6: {
            endpoint ep;
            (void)parse_endpoint(body, "us-east-1", addressing::automatic, ep, diag);
            break;
        }
        default: {
            (void)validate_bucket_name(body, diag);
            (void)validate_key(body, diag);
            break;
        }
    }
    return 0;
}
