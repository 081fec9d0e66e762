// Fuzz target for mongosim's own request decoder: the header check, OP_MSG (body, document
// sequences, moreToCome/exhaustAllowed, the CRC-32C trailer), legacy OP_QUERY and OP_COMPRESSED
// around either (snappy, zlib, zstd, noop). mongosim serves real drivers and load generators, so
// whatever bytes a client sends must end in a decoded request or a wire error, never a crash.
//
// Property checked on every request that decodes: wrapping the same message in OP_COMPRESSED
// with each compressor and decoding it again gives the same command, database and flags.
//
// Built with clang and -fsanitize=fuzzer it is a libFuzzer target; otherwise fuzz/replay_main.cpp
// replays the seed corpus (fuzz/mongosim/corpus) under any compiler.

#include <mongosim/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

namespace {

bool same_command(const mongosim::request& a, const mongosim::request& b) {
    return a.db == b.db && a.flags == b.flags && a.legacy == b.legacy && a.command && b.command &&
           a.command->len == b.command->len &&
           std::memcmp(bson_get_data(a.command.get()), bson_get_data(b.command.get()),
                       a.command->len) == 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> in(data, size);
    mongosim::message_header header;
    if (mongosim::decode_header(in, header))
        return 0;
    // The connection hands the decoder exactly one message of the announced length.
    if (static_cast<std::size_t>(header.length) > size)
        return 0;
    const auto message = in.first(static_cast<std::size_t>(header.length));
    mongosim::request req;
    if (mongosim::decode_request(message, req))
        return 0;
    if (header.op_code == mongosim::op_compressed)
        return 0;
    for (auto c : {mongosim::compressor::noop, mongosim::compressor::snappy,
                   mongosim::compressor::zlib, mongosim::compressor::zstd}) {
        const std::vector<std::uint8_t> wrapped = mongosim::encode_compressed(message, c);
        mongosim::request again;
        if (mongosim::decode_request(wrapped, again) || !same_command(req, again) ||
            again.compressed_with != c)
            std::abort();
    }
    return 0;
}
