// Fuzz target for the Redis reply parser (penne::redis::reply_parser over hiredis's
// redisReader): the input, after a first byte that picks the chunk size, is fed in chunks
// so that replies split at every position get exercised; every complete reply is rendered
// with to_string (walking the whole tree). The same bytes fed at once must give the same
// replies, so a split-dependent parse is a crash.
//
// Built with clang and -fsanitize=fuzzer it is a libFuzzer target; otherwise fuzz/replay_main.cpp
// replays the files (or directories of files) named on the command line.

#include <penne/redis/resp.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace penne::redis;

std::vector<std::string> parse(std::string_view in, std::size_t chunk, bool& failed) {
    reply_parser parser;
    std::vector<std::string> out;
    failed = false;
    while (!in.empty() && !failed) {
        const auto piece = in.substr(0, chunk);
        in.remove_prefix(piece.size());
        if (parser.feed(piece)) {
            failed = true;
            break;
        }
        value v;
        penne::error_code ec;
        while (parser.next(v, ec))
            out.push_back(to_string(v));
        failed = static_cast<bool>(ec);
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    const std::size_t chunk = std::size_t(data[0] % 64) + 1;
    const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    bool split_failed = false, whole_failed = false;
    auto split = parse(in, chunk, split_failed);
    auto whole = parse(in, in.size() + 1, whole_failed);
    // A protocol error may be found at different points, but the replies before it agree.
    const std::size_t common = std::min(split.size(), whole.size());
    for (std::size_t i = 0; i < common; ++i) {
        if (split[i] != whole[i])
            std::abort();
    }
    if (!split_failed && !whole_failed && split.size() != whole.size())
        std::abort();
    return 0;
}
