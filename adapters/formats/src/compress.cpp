#include <penne/formats/compress.hpp>
#include <penne/formats/error.hpp>

#include <sys/mman.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY  // ZSTD_createCCtx_advanced, ZSTD_customMem
#include <zstd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <stdexcept>
#include <utility>

namespace penne::formats {
namespace {

constexpr std::string_view allowed_codecs = "none, gzip, zstd";
// zlib counts in uInt: feed it in slices well below 4 GiB.
constexpr std::size_t zlib_slice = std::size_t(1) << 30;

// zstd's context allocations. Its workspace (hash and chain tables, about 1-3 MiB at the
// default levels) is read at random for every byte compressed: in 4 KiB pages it costs TLB
// misses, and where its pages land in the caches changes from one process to the next.
// Large blocks are therefore 2 MiB aligned and offered to the kernel as transparent huge
// pages (MADV_HUGEPAGE: honoured where THP is "madvise" or "always", ignored elsewhere):
// BM_Compress/0/3 (zstd-3, 10,000 events) ran 15-20 % faster, at the price of rounding a
// context's workspace up to whole 2 MiB pages.
constexpr std::size_t huge_page = std::size_t(2) << 20;

void* zstd_alloc(void*, std::size_t size) {
    if (size < huge_page / 2)
        return std::malloc(size);
    const std::size_t rounded = (size + huge_page - 1) / huge_page * huge_page;
    void* p = std::aligned_alloc(huge_page, rounded);
#if defined(MADV_HUGEPAGE)
    if (p)
        ::madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return p;
}

void zstd_free(void*, void* p) {
    std::free(p);  // aligned_alloc's blocks too
}

}  // namespace

std::string_view codec_name(codec c) noexcept {
    switch (c) {
        case codec::none:
            return "none";
        case codec::gzip:
            return "gzip";
        case codec::zstd:
            return "zstd";
    }
    return "none";
}

std::string_view file_extension(codec c) noexcept {
    switch (c) {
        case codec::none:
            return "";
        case codec::gzip:
            return ".gz";
        case codec::zstd:
            return ".zst";
    }
    return "";
}

std::string_view content_encoding(codec c) noexcept {
    switch (c) {
        case codec::none:
            return "";
        case codec::gzip:
            return "gzip";
        case codec::zstd:
            return "zstd";
    }
    return "";
}

int default_level(codec c) noexcept {
    switch (c) {
        case codec::none:
            return 0;
        case codec::gzip:
            return 6;
        case codec::zstd:
            return 3;
    }
    return 0;
}

int min_level(codec c) noexcept {
    return c == codec::none ? 0 : 1;
}

int max_level(codec c) noexcept {
    switch (c) {
        case codec::none:
            return 0;
        case codec::gzip:
            return 9;
        case codec::zstd:
            return 19;
    }
    return 0;
}

error_code parse_codec(std::string_view name, codec& out, diagnostics& diag) {
    for (codec c : {codec::none, codec::gzip, codec::zstd}) {
        if (name == codec_name(c)) {
            out = c;
            return {};
        }
    }
    diag.message = "unknown compression codec \"";
    diag.message.append(name);
    diag.message += "\"; allowed values: ";
    diag.message.append(allowed_codecs);
    return errc::unknown_codec;
}

error_code validate(compression_options& opts, diagnostics& diag) {
    const codec c = opts.codec;
    if (c != codec::none && c != codec::gzip && c != codec::zstd) {
        diag.message = "unknown compression codec; allowed values: ";
        diag.message.append(allowed_codecs);
        return errc::unknown_codec;
    }
    if (opts.level == 0) {
        opts.level = default_level(c);
        return {};
    }
    if (c == codec::none || opts.level < min_level(c) || opts.level > max_level(c)) {
        diag.message = "compression level ";
        diag.message += std::to_string(opts.level);
        diag.message += " is not valid for codec ";
        diag.message.append(codec_name(c));
        if (c == codec::none) {
            diag.message += " (it takes no level)";
        } else {
            diag.message += "; allowed levels: " + std::to_string(min_level(c)) + "-" +
                            std::to_string(max_level(c)) + " (default " +
                            std::to_string(default_level(c)) + ")";
        }
        return errc::invalid_level;
    }
    return {};
}

error_code parse_compression(std::string_view name, int level, compression_options& out,
                             diagnostics& diag) {
    compression_options opts;
    if (auto ec = parse_codec(name, opts.codec, diag))
        return ec;
    opts.level = level;
    if (auto ec = validate(opts, diag))
        return ec;
    out = opts;
    return {};
}

// ---- compressor -------------------------------------------------------------------------

struct compressor::context {
    ZSTD_CCtx* zstd = nullptr;
    z_stream zs{};
    bool zlib_ready = false;
    // Room for the worst case (ZSTD_compressBound / deflateBound), reused by every call.
    // Compressing straight into the caller's string would leave it holding that worst case
    // (about the input's size) for an object that keeps a fraction of it: sealed objects
    // waiting for their upload would hold several times the bytes they count against the
    // pipeline's memory bound. Here the result is copied out at its exact size; the copy
    // is of compressed bytes only, and the reused room costs no page faults or zero-fill
    // per batch. Its size is the largest batch this context compressed.
    std::string scratch;

    ~context() {
        if (zstd)
            ZSTD_freeCCtx(zstd);
        if (zlib_ready)
            deflateEnd(&zs);
    }
};

compressor::compressor(compression_options opts) : opts_(opts), ctx_(std::make_unique<context>()) {
    diagnostics diag;
    if (validate(opts_, diag))
        throw std::invalid_argument(diag.message);
    switch (opts_.codec) {
        case codec::none:
            break;
        case codec::zstd:
            ctx_->zstd = ZSTD_createCCtx_advanced(ZSTD_customMem{zstd_alloc, zstd_free, nullptr});
            if (!ctx_->zstd)
                throw std::bad_alloc();
            // Parameters are sticky: set once, every compress() resets the session only.
            ZSTD_CCtx_setParameter(ctx_->zstd, ZSTD_c_compressionLevel, opts_.level);
            ZSTD_CCtx_setParameter(ctx_->zstd, ZSTD_c_checksumFlag, 1);
            break;
        case codec::gzip:
            // windowBits 15 + 16: a gzip wrapper (no name, mtime 0) instead of zlib's.
            if (deflateInit2(&ctx_->zs, opts_.level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
                Z_OK)
                throw std::bad_alloc();
            ctx_->zlib_ready = true;
            break;
    }
}

compressor::~compressor() = default;

error_code compressor::compress(std::string_view in, std::string& out) {
    switch (opts_.codec) {
        case codec::none:
            out.assign(in.data(), in.size());
            return {};
        case codec::zstd: {
            ZSTD_CCtx_reset(ctx_->zstd, ZSTD_reset_session_only);
            std::string& room = ctx_->scratch;
            if (room.size() < ZSTD_compressBound(in.size()))
                room.resize(ZSTD_compressBound(in.size()));
            const std::size_t n =
                ZSTD_compress2(ctx_->zstd, room.data(), room.size(), in.data(), in.size());
            if (ZSTD_isError(n)) {
                out.clear();
                return errc::compression_failed;
            }
            out.assign(room.data(), n);
            return {};
        }
        case codec::gzip: {
            z_stream& zs = ctx_->zs;
            if (deflateReset(&zs) != Z_OK)
                return errc::compression_failed;
            std::string& room = ctx_->scratch;
            const std::size_t bound = static_cast<std::size_t>(deflateBound(&zs, in.size())) + 64;
            if (room.size() < bound)
                room.resize(bound);
            std::size_t in_pos = 0, out_pos = 0;
            for (;;) {
                const std::size_t in_take = std::min(in.size() - in_pos, zlib_slice);
                const bool last = in_pos + in_take == in.size();
                if (out_pos == room.size())
                    room.resize(room.size() * 2);
                const std::size_t out_take = std::min(room.size() - out_pos, zlib_slice);
                zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + in_pos));
                zs.avail_in = static_cast<uInt>(in_take);
                zs.next_out = reinterpret_cast<Bytef*>(room.data() + out_pos);
                zs.avail_out = static_cast<uInt>(out_take);
                const int rc = deflate(&zs, last ? Z_FINISH : Z_NO_FLUSH);
                in_pos += in_take - zs.avail_in;
                out_pos += out_take - zs.avail_out;
                if (rc == Z_STREAM_END)
                    break;
                if (rc != Z_OK && rc != Z_BUF_ERROR) {
                    out.clear();
                    return errc::compression_failed;
                }
            }
            out.assign(room.data(), out_pos);
            return {};
        }
    }
    return errc::compression_failed;
}

// ---- pool -------------------------------------------------------------------------------

compressor_pool::compressor_pool(compression_options opts, std::size_t max_idle)
    : opts_(opts), max_idle_(max_idle) {
    diagnostics diag;
    if (validate(opts_, diag))
        throw std::invalid_argument(diag.message);
}

compressor_pool::lease compressor_pool::acquire() {
    {
        std::lock_guard lock(mutex_);
        if (!free_.empty()) {
            std::unique_ptr<compressor> c = std::move(free_.back());
            free_.pop_back();
            return lease(*this, std::move(c));
        }
    }
    // Creating a context allocates and can take a while: never under the lock.
    return lease(*this, std::make_unique<compressor>(opts_));
}

void compressor_pool::give_back(std::unique_ptr<compressor> c) noexcept {
    {
        std::lock_guard lock(mutex_);
        if (free_.size() < max_idle_) {
            // push_back may throw only if the vector must grow; reserve keeps it in bounds.
            if (free_.capacity() < max_idle_) {
                try {
                    free_.reserve(max_idle_);
                } catch (...) {
                    return;  // c is freed outside the lock below
                }
            }
            free_.push_back(std::move(c));
            return;
        }
    }
}

compressor_pool::lease::~lease() {
    if (c_ && pool_)
        pool_->give_back(std::move(c_));
}

error_code compressor_pool::compress(std::string_view in, std::string& out) {
    lease l = acquire();
    return l->compress(in, out);
}

std::size_t compressor_pool::idle() const {
    std::lock_guard lock(mutex_);
    return free_.size();
}

// ---- decompression ----------------------------------------------------------------------

namespace {

error_code decompress_zstd(std::string_view in, std::string& out, diagnostics& diag,
                           std::size_t max_output) {
    std::unique_ptr<ZSTD_DCtx, decltype(&ZSTD_freeDCtx)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
    if (!dctx)
        return errc::compression_failed;
    out.clear();
    if (in.empty()) {
        diag.message = "zstd input is empty";
        return errc::truncated_input;
    }
    out.resize(std::min(max_output, std::max<std::size_t>(in.size() * 4, 4096)));
    ZSTD_inBuffer src{in.data(), in.size(), 0};
    std::size_t produced = 0;
    std::size_t pending = 0;  // ZSTD_decompressStream's hint: 0 once a frame is complete
    while (src.pos < src.size || pending != 0) {
        if (produced == out.size()) {
            if (out.size() >= max_output) {
                diag.message = "zstd output exceeds " + std::to_string(max_output) + " bytes";
                out.clear();
                return errc::output_limit;
            }
            out.resize(std::min(max_output, out.size() * 2));
        }
        ZSTD_outBuffer dst{out.data() + produced, out.size() - produced, 0};
        const std::size_t before_in = src.pos;
        pending = ZSTD_decompressStream(dctx.get(), &dst, &src);
        if (ZSTD_isError(pending)) {
            diag.message = std::string("zstd: ") + ZSTD_getErrorName(pending);
            out.clear();
            return errc::corrupt_input;
        }
        produced += dst.pos;
        if (pending != 0 && src.pos == src.size && dst.pos < dst.size && src.pos == before_in) {
            diag.message = "zstd frame is truncated";
            out.clear();
            return errc::truncated_input;
        }
    }
    out.resize(produced);
    return {};
}

error_code decompress_gzip(std::string_view in, std::string& out, diagnostics& diag,
                           std::size_t max_output) {
    out.clear();
    if (in.empty()) {
        diag.message = "gzip input is empty";
        return errc::truncated_input;
    }
    z_stream zs{};
    if (inflateInit2(&zs, 15 + 16) != Z_OK)
        return errc::compression_failed;
    struct guard {
        z_stream* z;
        ~guard() { inflateEnd(z); }
    } g{&zs};

    out.resize(std::min(max_output, std::max<std::size_t>(in.size() * 4, 4096)));
    std::size_t in_pos = 0, produced = 0;
    for (;;) {
        if (produced == out.size()) {
            if (out.size() >= max_output) {
                diag.message = "gzip output exceeds " + std::to_string(max_output) + " bytes";
                out.clear();
                return errc::output_limit;
            }
            out.resize(std::min(max_output, out.size() * 2));
        }
        const std::size_t in_take = std::min(in.size() - in_pos, zlib_slice);
        const std::size_t out_take = std::min(out.size() - produced, zlib_slice);
        zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + in_pos));
        zs.avail_in = static_cast<uInt>(in_take);
        zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
        zs.avail_out = static_cast<uInt>(out_take);
        const int rc = inflate(&zs, Z_NO_FLUSH);
        in_pos += in_take - zs.avail_in;
        produced += out_take - zs.avail_out;
        if (rc == Z_STREAM_END) {
            if (in_pos == in.size())
                break;
            // Concatenated members form one file (RFC 1952 §2.2): start the next one.
            if (inflateReset(&zs) != Z_OK)
                return errc::compression_failed;
            continue;
        }
        if (rc == Z_BUF_ERROR && in_pos == in.size() && zs.avail_out != 0) {
            diag.message = "gzip member is truncated";
            out.clear();
            return errc::truncated_input;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            diag.message = std::string("gzip: ") + (zs.msg ? zs.msg : "invalid data");
            out.clear();
            return rc == Z_MEM_ERROR ? errc::compression_failed : errc::corrupt_input;
        }
    }
    out.resize(produced);
    return {};
}

}  // namespace

error_code decompress(codec c, std::string_view in, std::string& out, diagnostics& diag,
                      std::size_t max_output) {
    switch (c) {
        case codec::none:
            if (in.size() > max_output) {
                diag.message = "input exceeds " + std::to_string(max_output) + " bytes";
                return errc::output_limit;
            }
            out.assign(in.data(), in.size());
            return {};
        case codec::gzip:
            return decompress_gzip(in, out, diag, max_output);
        case codec::zstd:
            return decompress_zstd(in, out, diag, max_output);
    }
    diag.message = "unknown compression codec";
    return errc::unknown_codec;
}

}  // namespace penne::formats
