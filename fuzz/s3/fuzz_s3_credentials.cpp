// Fuzz target for the reply parsers of the S3 credential providers
// (adapters/s3/src/detail/credentials_replies.cpp): the ECS/EKS and IMDSv2 credentials JSON,
// their JSON error bodies, and STS AssumeRoleWithWebIdentity's XML replies (success and
// ErrorResponse). The first input byte selects the parser (the seeds use the digits '0'..'3');
// the rest is the reply body.
//
// Besides crashes it checks the parsers' promises, aborting when one is broken: the token the
// caller sent never survives into a summary or an error's code and message (the seeds carry
// it, plain and escaped), no problem text quotes it, a failed STS parse leaves its output
// alone, and accepted credentials are never blank.
//
// Built with clang and -fsanitize=fuzzer it is a libFuzzer target; otherwise fuzz/replay_main.cpp
// replays the seed corpus (corpus_credentials/) so CI runs it under g++.

#include "credentials_replies.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

namespace {

using namespace penne::s3::detail;

// The secret the seeds embed (as SecretAccessKey, Token, SessionToken and in error messages).
constexpr std::string_view secret = "penneFuzzSecretToken0123456789";

void require(bool promise) {
    if (!promise)
        std::abort();
}

bool quotes_secret(std::string_view text) {
    return text.find(secret) != std::string_view::npos;
}

bool blank(std::string_view s) {
    return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
    switch (data[0] % 4) {
        case 0: {
            json_credentials jc;
            std::string problem;
            if (parse_credentials_json(body, jc, problem)) {
                require(!jc.creds.access_key_id.empty() && !jc.creds.secret_access_key.empty());
            } else {
                require(!problem.empty() && !quotes_secret(problem));
            }
            break;
        }
        case 1:
            require(!quotes_secret(json_error_summary(body, secret)));
            break;
        case 2: {
            sts_credentials out;
            out.creds.access_key_id = "untouched";
            std::string problem;
            if (parse_sts_credentials(body, "https://sts.example.com", out, problem)) {
                require(!blank(out.creds.access_key_id) && !blank(out.creds.secret_access_key) &&
                        !blank(out.creds.session_token));
            } else {
                require(!problem.empty() && !quotes_secret(problem));
                require(out.creds.access_key_id == "untouched" &&
                        out.creds.secret_access_key.empty());
            }
            break;
        }
        default: {
            const auto err = parse_sts_error(body, secret);
            require(!quotes_secret(err.code) && !quotes_secret(err.message));
            break;
        }
    }
    return 0;
}
