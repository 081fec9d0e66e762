#include <penne/mongo/compression.hpp>
#include <penne/mongo/wire.hpp>

#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>

namespace penne::mongo {
namespace {

error_code bad() noexcept {
    return make_error_code(client_errc::bad_compression);
}

void store_i32(std::uint8_t* p, std::int32_t v) noexcept {
    auto u = static_cast<std::uint32_t>(v);
    p[0] = std::uint8_t(u);
    p[1] = std::uint8_t(u >> 8);
    p[2] = std::uint8_t(u >> 16);
    p[3] = std::uint8_t(u >> 24);
}

struct cctx_deleter {
    void operator()(ZSTD_CCtx* c) const noexcept { ZSTD_freeCCtx(c); }
};
struct dctx_deleter {
    void operator()(ZSTD_DCtx* d) const noexcept { ZSTD_freeDCtx(d); }
};

}  // namespace

// Contexts are created on first use, so a connection that never speaks zstd owns none.
struct codec_set::zstd_contexts {
    std::unique_ptr<ZSTD_CCtx, cctx_deleter> cctx;
    std::unique_ptr<ZSTD_DCtx, dctx_deleter> dctx;
};

std::optional<compressor_id> compressor_from_name(std::string_view name) noexcept {
    if (name == "snappy")
        return compressor_id::snappy;
    if (name == "zlib")
        return compressor_id::zlib;
    if (name == "zstd")
        return compressor_id::zstd;
    if (name == "noop")
        return compressor_id::noop;
    return std::nullopt;
}

std::string_view to_string(compressor_id c) noexcept {
    switch (c) {
        case compressor_id::noop:
            return "noop";
        case compressor_id::snappy:
            return "snappy";
        case compressor_id::zlib:
            return "zlib";
        case compressor_id::zstd:
            return "zstd";
    }
    return "unknown";
}

bool may_compress(std::string_view name) noexcept {
    static constexpr std::string_view never[] = {
        "hello",        "isMaster",   "ismaster",   "saslStart",       "saslContinue",   "getnonce",
        "authenticate", "createUser", "updateUser", "copydbSaslStart", "copydbgetnonce", "copydb"};
    return std::find(std::begin(never), std::end(never), name) == std::end(never);
}

codec_set::codec_set(int zlib_level)
    : zstd_(std::make_unique<zstd_contexts>()), zlib_level_(zlib_level) {}

codec_set::~codec_set() = default;

error_code codec_set::compress(compressor_id c, byte_view message, std::vector<std::uint8_t>& out) {
    if (message.size() < wire::header_size)
        return make_error_code(client_errc::message_too_short);
    const auto header = wire::read_header(message);
    if (header.op_code == static_cast<std::int32_t>(wire::opcode::compressed))
        return make_error_code(client_errc::malformed_message);
    const byte_view body = message.subspan(wire::header_size);

    const std::size_t start = out.size();
    out.resize(start + wire::compressed_prefix_size);
    std::uint8_t* h = out.data() + start;
    store_i32(h + 4, header.request_id);
    store_i32(h + 8, header.response_to);
    store_i32(h + 12, static_cast<std::int32_t>(wire::opcode::compressed));
    store_i32(h + 16, header.op_code);
    store_i32(h + 20, static_cast<std::int32_t>(body.size()));
    h[24] = static_cast<std::uint8_t>(c);

    const std::size_t at = out.size();
    std::size_t produced = 0;
    switch (c) {
        case compressor_id::noop:
            out.insert(out.end(), body.begin(), body.end());
            produced = body.size();
            break;
        case compressor_id::snappy: {
            std::size_t cap = snappy_max_compressed_length(body.size());
            out.resize(at + cap);
            if (snappy_compress(reinterpret_cast<const char*>(body.data()), body.size(),
                                reinterpret_cast<char*>(out.data() + at), &cap) != SNAPPY_OK) {
                out.resize(start);
                return bad();
            }
            produced = cap;
            break;
        }
        case compressor_id::zlib: {
            uLongf cap = compressBound(static_cast<uLong>(body.size()));
            out.resize(at + cap);
            if (compress2(out.data() + at, &cap, body.data(), static_cast<uLong>(body.size()),
                          zlib_level_) != Z_OK) {
                out.resize(start);
                return bad();
            }
            produced = cap;
            break;
        }
        case compressor_id::zstd: {
            if (!zstd_->cctx)
                zstd_->cctx.reset(ZSTD_createCCtx());
            if (!zstd_->cctx) {
                out.resize(start);
                return bad();
            }
            std::size_t cap = ZSTD_compressBound(body.size());
            out.resize(at + cap);
            std::size_t n = ZSTD_compressCCtx(zstd_->cctx.get(), out.data() + at, cap, body.data(),
                                              body.size(), ZSTD_CLEVEL_DEFAULT);
            if (ZSTD_isError(n)) {
                out.resize(start);
                return bad();
            }
            produced = n;
            break;
        }
        default:
            out.resize(start);
            return bad();
    }
    out.resize(at + produced);
    store_i32(out.data() + start, static_cast<std::int32_t>(out.size() - start));
    return {};
}

error_code codec_set::decompress(byte_view frame, std::uint32_t max_message_size,
                                 std::vector<std::uint8_t>& out) {
    wire::op_compressed_view v;
    if (auto ec = wire::decode_op_compressed(frame, v))
        return ec;
    const auto expected = static_cast<std::size_t>(v.uncompressed_size);
    if (wire::header_size + expected > max_message_size)
        return make_error_code(client_errc::message_too_large);

    out.resize(wire::header_size + expected);
    std::uint8_t* dst = out.data() + wire::header_size;
    const auto* src = v.payload.data();
    const std::size_t n = v.payload.size();
    switch (static_cast<compressor_id>(v.compressor)) {
        case compressor_id::noop:
            if (n != expected)
                return bad();
            if (n > 0)
                std::memcpy(dst, src, n);
            break;
        case compressor_id::snappy: {
            std::size_t len = 0;
            const auto* in = reinterpret_cast<const char*>(src);
            if (snappy_uncompressed_length(in, n, &len) != SNAPPY_OK || len != expected)
                return bad();
            if (snappy_uncompress(in, n, reinterpret_cast<char*>(dst), &len) != SNAPPY_OK ||
                len != expected)
                return bad();
            break;
        }
        case compressor_id::zlib: {
            // uncompress2 reports how much input it used: trailing garbage is an error too.
            uLongf len = static_cast<uLongf>(expected);
            uLong used = static_cast<uLong>(n);
            std::uint8_t dummy = 0;
            int rc = uncompress2(expected > 0 ? dst : &dummy, &len, src, &used);
            if (rc != Z_OK || len != expected || used != n)
                return bad();
            break;
        }
        case compressor_id::zstd: {
            if (!zstd_->dctx)
                zstd_->dctx.reset(ZSTD_createDCtx());
            if (!zstd_->dctx)
                return bad();
            std::size_t got = ZSTD_decompressDCtx(zstd_->dctx.get(), dst, expected, src, n);
            if (ZSTD_isError(got) || got != expected)
                return bad();
            break;
        }
        default:
            return bad();
    }
    std::uint8_t* h = out.data();
    store_i32(h, static_cast<std::int32_t>(out.size()));
    store_i32(h + 4, v.header.request_id);
    store_i32(h + 8, v.header.response_to);
    store_i32(h + 12, v.original_opcode);
    return {};
}

}  // namespace penne::mongo
