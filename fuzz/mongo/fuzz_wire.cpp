// Fuzz target for everything in adapters/mongo that reads bytes from the network: the
// frame reader (fed in pieces whose sizes come from the input), the OP_COMPRESSED decoder
// and its zstd/zlib/snappy inflation (whose output is decoded again), the OP_MSG and
// OP_REPLY decoders, the command-reply decoder and the change-event decoder.
//
// Built with clang and -fsanitize=fuzzer it is a libFuzzer target; otherwise fuzz/replay_main.cpp
// replays the files (or directories of files) named on the command line, so corpora and
// crash reproducers run under g++ with the sanitizers too.

#include <penne/mongo/commands.hpp>
#include <penne/mongo/compression.hpp>
#include <penne/mongo/wire.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace {

using namespace penne::mongo;

void decode_frame(const std::vector<std::uint8_t>& frame, bool inflate = true) {
    if (inflate) {
        // As the connection does: a compressed reply is inflated (bounded like a frame
        // from the reader) and the message it carries decoded like any other.
        static penne::mongo::codec_set codecs;
        std::vector<std::uint8_t> inflated;
        if (!codecs.decompress(frame, 1 << 20, inflated))
            decode_frame(inflated, false);
    }
    wire::op_msg_view msg;
    if (!wire::decode_op_msg(frame, msg)) {
        command_reply reply;
        if (!parse_reply(msg.body, reply) && reply.cursor) {
            std::vector<penne::change_event> events;
            (void)parse_change_events(reply.cursor->batch, events);
            (void)reply.has_error_label("ResumableChangeStreamError");
        }
        hello_reply hello;
        (void)parse_hello(msg.body, hello);
        for (const auto& seq : msg.sequences) {
            seq.for_each([](penne::byte_view doc) {
                penne::change_event ev;
                (void)parse_change_event(doc, ev);
            });
        }
    }
    wire::op_reply_view rep;
    if (!wire::decode_op_reply(frame, rep)) {
        command_reply reply;
        (void)parse_reply(rep.first_document, reply);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0)
        return 0;
    // The first byte picks the chunk size, so splits at every position get exercised.
    std::size_t chunk = std::size_t(data[0] % 64) + 1;
    penne::byte_view in(data + 1, size - 1);
    wire::frame_reader reader(1 << 20);
    std::vector<std::uint8_t> frame;
    while (!in.empty()) {
        penne::error_code ec;
        std::size_t n = reader.feed(in.first(std::min(chunk, in.size())), ec);
        if (ec)
            break;
        in = in.subspan(n);
        if (reader.ready()) {
            reader.take(frame);
            decode_frame(frame);
        }
    }
    // The raw input as one frame too (skips the reader's length checks).
    decode_frame(std::vector<std::uint8_t>(data + 1, data + size));
    return 0;
}
