#pragma once
// Whole-object compression for sealed batches (DESIGN §3, §9): none, gzip (deflate in a
// gzip member, levels 1-9, default 6) and zstd (one frame with a content checksum, levels
// 1-19, default 3).
//
// A compressor owns one library context (z_stream or ZSTD_CCtx, hundreds of KiB to a few
// MiB) and room for the worst-case output of the largest input it compressed. Batches do not own
// one: they borrow one from a compressor_pool when they seal and give it back right after, so
// thousands of idle collections cost no compressor memory.
//
// Determinism: compress() output depends only on the input bytes and the options (the gzip
// header carries no file name and a zero mtime), so a replayed batch yields the same
// object bytes.
//
// Thread safety: a compressor is used by one thread at a time. compressor_pool is safe to
// use from several threads: a short lock guards its free list only; compression itself
// runs unlocked on the borrowed context. Lifetimes: a lease must not outlive its pool.
// Nothing here is asynchronous, so there is nothing to cancel; callers that compress
// large objects may hand the work to a thread pool of their own.

#include <penne/error.hpp>

#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace penne::formats {

enum class codec { none, gzip, zstd };

struct compression_options {
    formats::codec codec = codec::none;
    int level = 0;  // 0 selects the codec's default level
};

std::string_view codec_name(codec c) noexcept;        // "none", "gzip", "zstd"
std::string_view file_extension(codec c) noexcept;    // "", ".gz", ".zst"
std::string_view content_encoding(codec c) noexcept;  // "", "gzip", "zstd"
int default_level(codec c) noexcept;                  // 0, 6, 3
int min_level(codec c) noexcept;                      // 0, 1, 1
int max_level(codec c) noexcept;                      // 0, 9, 19

// Parses a codec name from configuration (case-sensitive, as written in penne.toml).
// On failure returns errc::unknown_codec and a message listing the allowed values.
error_code parse_codec(std::string_view name, codec& out, diagnostics& diag);

// Parses codec name and level together; level 0 means the codec's default. Levels outside
// the codec's range are refused (errc::invalid_level) rather than clamped.
error_code parse_compression(std::string_view name, int level, compression_options& out,
                             diagnostics& diag);

// Checks an options value built in code; normalises level 0 to the default on success.
error_code validate(compression_options& opts, diagnostics& diag);

class compressor {
public:
    // `opts` must be valid (see validate()); throws std::invalid_argument otherwise, since
    // that is a programming error: configuration is validated when it is parsed.
    explicit compressor(compression_options opts);
    ~compressor();
    compressor(const compressor&) = delete;
    compressor& operator=(const compressor&) = delete;

    // Replaces the content of `out` with the compressed form of `in` (one gzip member or
    // one zstd frame; a copy for codec::none). Reuses `out`'s capacity; an empty `out` gets
    // exactly the compressed size (the worst-case room is the compressor's own, kept for
    // the next call), so an object waiting for its upload holds no more than it counts.
    error_code compress(std::string_view in, std::string& out);

    const compression_options& options() const noexcept { return opts_; }

private:
    struct context;
    compression_options opts_;
    std::unique_ptr<context> ctx_;
};

class compressor_pool {
public:
    // `max_idle` bounds the contexts kept for reuse; more may be lent at once under load,
    // and the surplus is freed when returned.
    explicit compressor_pool(compression_options opts, std::size_t max_idle = 4);
    compressor_pool(const compressor_pool&) = delete;
    compressor_pool& operator=(const compressor_pool&) = delete;

    // A borrowed compressor that goes back to the pool when the lease is destroyed.
    class lease {
    public:
        lease(lease&& other) noexcept : pool_(other.pool_), c_(std::move(other.c_)) {}
        lease& operator=(lease&&) = delete;
        ~lease();
        compressor& operator*() const noexcept { return *c_; }
        compressor* operator->() const noexcept { return c_.get(); }

    private:
        friend class compressor_pool;
        lease(compressor_pool& pool, std::unique_ptr<compressor> c) noexcept
            : pool_(&pool), c_(std::move(c)) {}
        compressor_pool* pool_;
        std::unique_ptr<compressor> c_;
    };

    lease acquire();
    // Borrow, compress, give back.
    error_code compress(std::string_view in, std::string& out);

    const compression_options& options() const noexcept { return opts_; }
    std::size_t idle() const;  // contexts currently in the free list

private:
    void give_back(std::unique_ptr<compressor> c) noexcept;

    compression_options opts_;
    std::size_t max_idle_;
    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<compressor>> free_;
};

// Decompresses a whole object for tests and tools: every zstd frame of a multi-frame input
// and every member of concatenated gzip members, in order. Replaces the content of `out`.
// Fails with corrupt_input, truncated_input or output_limit (more than `max_output` bytes).
error_code decompress(codec c, std::string_view in, std::string& out, diagnostics& diag,
                      std::size_t max_output = std::size_t(1) << 32);

}  // namespace penne::formats
