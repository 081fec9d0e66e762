#include <penne/formats/avro.hpp>
#include <penne/formats/error.hpp>
#include <penne/formats/tabular.hpp>

#include "detail/rigatoni.hpp"

#include <snappy.h>
#include <zlib.h>
#include <zstd.h>

#include <array>
#include <climits>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace penne::formats {
namespace detail {

// One library context for a block codec plus the buffer it compresses into. Borrowed by an
// encoder for the length of one block.
class avro_block_compressor {
public:
    avro_block_compressor(const avro_block_compressor&) = delete;
    avro_block_compressor& operator=(const avro_block_compressor&) = delete;

    ~avro_block_compressor() {
        if (deflate_ready_)
            deflateEnd(&z_);
        if (zstd_)
            ZSTD_freeCCtx(zstd_);
    }

    // nullptr when the library cannot allocate its context.
    static std::unique_ptr<avro_block_compressor> make(avro_codec codec, int level) {
        std::unique_ptr<avro_block_compressor> c(new avro_block_compressor(codec));
        switch (codec) {
            case avro_codec::deflate:
                // Negative window bits: raw deflate, without the zlib header and Adler-32.
                if (deflateInit2(&c->z_, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
                    return nullptr;
                c->deflate_ready_ = true;
                break;
            case avro_codec::zstandard:
                c->zstd_ = ZSTD_createCCtx();
                if (!c->zstd_ ||
                    ZSTD_isError(ZSTD_CCtx_setParameter(c->zstd_, ZSTD_c_compressionLevel, level)))
                    return nullptr;
                break;
            case avro_codec::null:
            case avro_codec::snappy:
                break;
        }
        return c;
    }

    // Compresses `in` into output(); false when the library fails (out of memory).
    bool compress(std::string_view in) {
        switch (codec_) {
            case avro_codec::deflate:
                return deflate_block(in);
            case avro_codec::snappy:
                return snappy_block(in);
            case avro_codec::zstandard:
                return zstd_block(in);
            case avro_codec::null:
                break;
        }
        out_.assign(in);
        return true;
    }

    std::string_view output() const noexcept { return out_; }

private:
    explicit avro_block_compressor(avro_codec codec) noexcept : codec_(codec) {}

    bool deflate_block(std::string_view in) {
        if (in.size() > UINT_MAX / 2 || deflateReset(&z_) != Z_OK)
            return false;
        const uLong bound = deflateBound(&z_, static_cast<uLong>(in.size()));
        out_.resize(bound);
        z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
        z_.avail_in = static_cast<uInt>(in.size());
        z_.next_out = reinterpret_cast<Bytef*>(out_.data());
        z_.avail_out = static_cast<uInt>(bound);
        if (deflate(&z_, Z_FINISH) != Z_STREAM_END)
            return false;
        out_.resize(bound - z_.avail_out);
        return true;
    }

    bool snappy_block(std::string_view in) {
        const std::size_t bound = snappy::MaxCompressedLength(in.size());
        out_.resize(bound + 4);
        std::size_t n = 0;
        snappy::RawCompress(in.data(), in.size(), out_.data(), &n);
        // The codec's checksum: CRC-32 (ISO-HDLC, zlib's) of the uncompressed bytes, big-endian.
        const auto crc = static_cast<std::uint32_t>(
            crc32_z(0, reinterpret_cast<const Bytef*>(in.data()), in.size()));
        out_[n] = static_cast<char>(crc >> 24);
        out_[n + 1] = static_cast<char>(crc >> 16);
        out_[n + 2] = static_cast<char>(crc >> 8);
        out_[n + 3] = static_cast<char>(crc);
        out_.resize(n + 4);
        return true;
    }

    bool zstd_block(std::string_view in) {
        out_.resize(ZSTD_compressBound(in.size()));
        const std::size_t n = ZSTD_compress2(zstd_, out_.data(), out_.size(), in.data(), in.size());
        if (ZSTD_isError(n))
            return false;
        out_.resize(n);
        return true;
    }

    avro_codec codec_;
    z_stream z_{};
    bool deflate_ready_ = false;
    ZSTD_CCtx* zstd_ = nullptr;
    std::string out_;
};

// Contexts kept for reuse across the blocks of every batch of one factory. A block borrows
// one only while it is compressed, so the number alive follows the strands compressing at
// that moment, not the number of open batches.
struct avro_codec_pool {
    avro_codec_pool(avro_codec c, int l) noexcept : codec(c), level(l) {}

    class lease {
    public:
        lease(avro_codec_pool& pool, std::unique_ptr<avro_block_compressor> c) noexcept
            : pool_(&pool), c_(std::move(c)) {}
        lease(lease&& other) noexcept : pool_(other.pool_), c_(std::move(other.c_)) {}
        lease& operator=(lease&&) = delete;
        ~lease() {
            if (c_)
                pool_->give_back(std::move(c_));
        }
        avro_block_compressor* get() const noexcept { return c_.get(); }

    private:
        avro_codec_pool* pool_;
        std::unique_ptr<avro_block_compressor> c_;
    };

    lease acquire() {
        {
            std::lock_guard lock(mutex);
            if (!idle.empty()) {
                auto c = std::move(idle.back());
                idle.pop_back();
                return lease(*this, std::move(c));
            }
        }
        return lease(*this, avro_block_compressor::make(codec, level));
    }

    void give_back(std::unique_ptr<avro_block_compressor> c) noexcept {
        std::lock_guard lock(mutex);
        if (idle.size() < max_idle)
            idle.push_back(std::move(c));
    }

    const avro_codec codec;
    const int level;
    static constexpr std::size_t max_idle = 4;
    std::mutex mutex;
    std::vector<std::unique_ptr<avro_block_compressor>> idle;  // reserved in the factory
};

}  // namespace detail

namespace {

// SHA-256 (FIPS 180-4) of a short input, for the sync marker. The formats room does not link
// a crypto library, and this runs once per object.
std::array<std::uint8_t, 32> sha256(std::string_view msg) noexcept {
    static constexpr std::uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    };
    std::uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                          0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    auto rotr = [](std::uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };
    auto block = [&](const std::uint8_t* p) {
        std::uint32_t w[64];
        for (int t = 0; t < 16; ++t) {
            w[t] = std::uint32_t{p[4 * t]} << 24 | std::uint32_t{p[4 * t + 1]} << 16 |
                   std::uint32_t{p[4 * t + 2]} << 8 | std::uint32_t{p[4 * t + 3]};
        }
        for (int t = 16; t < 64; ++t) {
            const std::uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
            const std::uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
            w[t] = w[t - 16] + s0 + w[t - 7] + s1;
        }
        std::uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6],
                      hh = h[7];
        for (int t = 0; t < 64; ++t) {
            const std::uint32_t t1 =
                hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[t] + w[t];
            const std::uint32_t t2 =
                (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
        h[4] += e;
        h[5] += f;
        h[6] += g;
        h[7] += hh;
    };

    const auto* p = reinterpret_cast<const std::uint8_t*>(msg.data());
    std::size_t n = msg.size();
    const std::uint64_t bits = static_cast<std::uint64_t>(n) * 8;
    for (; n >= 64; n -= 64, p += 64)
        block(p);
    // The tail, the 0x80 terminator and the big-endian bit length fill one or two blocks.
    std::uint8_t last[128] = {};
    std::memcpy(last, p, n);
    last[n] = 0x80;
    const std::size_t total = n + 9 <= 64 ? 64 : 128;
    for (int i = 0; i < 8; ++i)
        last[total - 1 - i] = static_cast<std::uint8_t>(bits >> (8 * i));
    block(last);
    if (total == 128)
        block(last + 64);

    std::array<std::uint8_t, 32> out;
    for (int i = 0; i < 8; ++i) {
        out[4 * i] = static_cast<std::uint8_t>(h[i] >> 24);
        out[4 * i + 1] = static_cast<std::uint8_t>(h[i] >> 16);
        out[4 * i + 2] = static_cast<std::uint8_t>(h[i] >> 8);
        out[4 * i + 3] = static_cast<std::uint8_t>(h[i]);
    }
    return out;
}

int default_level(avro_codec c) noexcept {
    switch (c) {
        case avro_codec::deflate:
            return 6;
        case avro_codec::zstandard:
            return 3;
        case avro_codec::null:
        case avro_codec::snappy:
            break;
    }
    return 0;
}

int max_level(avro_codec c) noexcept {
    switch (c) {
        case avro_codec::deflate:
            return 9;
        case avro_codec::zstandard:
            return 19;
        case avro_codec::null:
        case avro_codec::snappy:
            break;
    }
    return 0;
}

// Avro strings and bytes: the length as a long, then the bytes.
void append_avro_bytes(std::string_view s, std::string& out) {
    append_avro_long(static_cast<std::int64_t>(s.size()), out);
    out.append(s);
}

// A ["null", T] union: branch 0 is null, branch 1 the value.
void append_null_branch(std::string& out) {
    out += '\0';
}
void append_value_branch(std::string& out) {
    out += '\x02';  // zigzag(1)
}

void append_optional_string(const std::optional<std::string_view>& s, std::string& out) {
    if (!s) {
        append_null_branch(out);
        return;
    }
    append_value_branch(out);
    append_avro_bytes(*s, out);
}

void append_optional_long(const std::optional<std::int64_t>& v, std::string& out) {
    if (!v) {
        append_null_branch(out);
        return;
    }
    append_value_branch(out);
    append_avro_long(*v, out);
}

// --- Schemas.

std::string penne_schema(avro_timestamp_unit unit) {
    const std::string timestamp = unit == avro_timestamp_unit::micros
                                      ? R"({"type":"long","logicalType":"timestamp-micros"})"
                                      : R"({"type":"long","logicalType":"timestamp-millis"})";
    std::string s = R"({"name":"penne.ChangeEvent","type":"record","fields":[)";
    auto field = [&s](tabular_column c, std::string_view type) {
        if (s.back() != '[')
            s += ',';
        s += R"({"name":")";
        s.append(tabular_column_names[static_cast<std::size_t>(c)]);
        s += R"(","type":)";
        s.append(type);
        s += '}';
    };
    auto nullable = [&s, &field](tabular_column c, std::string_view type) {
        field(c, R"(["null",)" + std::string(type) + ']');
        s.insert(s.size() - 1, R"(,"default":null)");
    };
    field(tabular_column::operation, R"("string")");
    nullable(tabular_column::database, R"("string")");
    nullable(tabular_column::collection, R"("string")");
    field(tabular_column::cluster_time, timestamp);
    field(tabular_column::cluster_time_increment, R"("long")");
    nullable(tabular_column::wall_time, timestamp);
    nullable(tabular_column::document_key, R"("string")");
    nullable(tabular_column::full_document, R"("string")");
    nullable(tabular_column::update_description, R"("string")");
    nullable(tabular_column::full_document_before_change, R"("string")");
    nullable(tabular_column::txn_number, R"("long")");
    nullable(tabular_column::lsid, R"("string")");
    field(tabular_column::resume_token, R"("string")");
    s += "]}";
    return s;
}

// Rigatoni's schema, attribute order aside.
constexpr std::string_view rigatoni_schema =
    R"({"name":"rigatoni.ChangeEvent","type":"record","fields":[)"
    R"({"name":"operation","type":"string"},)"
    R"({"name":"database","type":"string"},)"
    R"({"name":"collection","type":"string"},)"
    R"({"name":"cluster_time","type":"string"},)"
    R"({"name":"document_key","type":["null","string"],"default":null},)"
    R"({"name":"full_document","type":["null","string"],"default":null},)"
    R"({"name":"resume_token","type":"string"}]})";

// --- The encoder.

class avro_encoder final : public batch_encoder {
public:
    avro_encoder(const avro_options& opts, std::string_view schema,
                 std::shared_ptr<detail::avro_codec_pool> pool, std::string_view object_key)
        : layout_(opts.layout),
          codec_(opts.codec),
          micros_(opts.timestamp_unit == avro_timestamp_unit::micros),
          block_bytes_(opts.block_bytes),
          sync_(avro_sync_marker_for(object_key)),
          extractor_(opts.mode),
          pool_(std::move(pool)) {
        static constexpr char magic[] = {'O', 'b', 'j', '\x01'};
        out_.append(magic, sizeof magic);
        append_avro_long(2, out_);  // one map block with two entries, then the end block
        append_avro_bytes("avro.schema", out_);
        append_avro_bytes(schema, out_);
        append_avro_bytes("avro.codec", out_);
        append_avro_bytes(avro_codec_name(codec_), out_);
        append_avro_long(0, out_);
        append_sync();
    }

    error_code append(const change_event& ev, diagnostics& diag) override {
        // Extraction reads and validates the whole event before a byte is written.
        tabular_row row;
        if (auto ec = extractor_.extract(ev, row, diag))
            return ec;
        std::optional<std::int64_t> wall = row.wall_time_ms;
        if (wall && micros_ && layout_ == avro_layout::penne) {
            std::int64_t us;
            if (__builtin_mul_overflow(*wall, std::int64_t{1000}, &us)) {
                diag.message = "change event (";
                diag.message.append(row.operation);
                diag.message += ") in ";
                diag.message.append(row.database.value_or("an unknown database"));
                if (row.collection) {
                    diag.message += '.';
                    diag.message.append(*row.collection);
                }
                diag.message +=
                    " cannot be written as an Avro record: wallTime is outside the range of "
                    "timestamp-micros";
                return penne::errc::unencodable_event;
            }
            wall = us;
        }
        const std::size_t record_start = block_.size();
        if (layout_ == avro_layout::rigatoni) {
            rigatoni_record(row);
        } else {
            penne_record(row, wall);
        }
        ++count_;
        if (block_.size() >= block_bytes_) {
            if (auto ec = flush_block()) {
                block_.resize(record_start);
                --count_;
                diag.message = "compressing an Avro ";
                diag.message.append(avro_codec_name(codec_));
                diag.message += " block failed (out of memory)";
                return ec;
            }
        }
        return {};
    }

    std::size_t buffered_bytes() const noexcept override { return out_.size() + block_.size(); }
    std::size_t held_bytes() const noexcept override { return out_.capacity() + block_.capacity(); }

    void finish(std::string& out) override {
        if (flush_block())
            throw std::bad_alloc();
        out.swap(out_);
        out_.clear();
        out_.shrink_to_fit();
        block_.clear();
        block_.shrink_to_fit();
    }

private:
    void append_sync() { out_.append(reinterpret_cast<const char*>(sync_.data()), sync_.size()); }

    // Moves the open block into the object: count, size, data as the codec left it, sync.
    error_code flush_block() {
        if (count_ == 0)
            return {};
        if (codec_ == avro_codec::null) {
            write_block(block_);
        } else {
            auto lease = pool_->acquire();
            if (!lease.get() || !lease.get()->compress(block_))
                return errc::compression_failed;
            write_block(lease.get()->output());
        }
        block_.clear();
        count_ = 0;
        return {};
    }

    void write_block(std::string_view data) {
        append_avro_long(count_, out_);
        append_avro_long(static_cast<std::int64_t>(data.size()), out_);
        out_.append(data);
        append_sync();
    }

    void penne_record(const tabular_row& row, const std::optional<std::int64_t>& wall) {
        append_avro_bytes(row.operation, block_);
        append_optional_string(row.database, block_);
        append_optional_string(row.collection, block_);
        const std::int64_t per_second = micros_ ? 1'000'000 : 1000;
        append_avro_long(std::int64_t{row.cluster_time_seconds} * per_second, block_);
        append_avro_long(row.cluster_time_increment, block_);
        append_optional_long(wall, block_);
        append_optional_string(row.document_key, block_);
        append_optional_string(row.full_document, block_);
        append_optional_string(row.update_description, block_);
        append_optional_string(row.full_document_before_change, block_);
        append_optional_long(row.txn_number, block_);
        append_optional_string(row.lsid, block_);
        append_avro_bytes(row.resume_token, block_);
    }

    void rigatoni_record(const tabular_row& row) {
        append_avro_bytes(detail::rigatoni_debug_operation(row.operation), block_);
        append_avro_bytes(row.database.value_or(std::string_view{}), block_);
        append_avro_bytes(row.collection.value_or(std::string_view{}), block_);
        scratch_.clear();
        detail::append_rigatoni_time(row.cluster_time_seconds, row.cluster_time_increment,
                                     detail::rigatoni_utc_suffix::offset, scratch_);
        append_avro_bytes(scratch_, block_);
        compact(row.document_key);
        compact(row.full_document);
        scratch_.clear();
        detail::append_compact_json(row.resume_token, scratch_);
        append_avro_bytes(scratch_, block_);
    }

    void compact(const std::optional<std::string_view>& json) {
        if (!json) {
            append_null_branch(block_);
            return;
        }
        scratch_.clear();
        detail::append_compact_json(*json, scratch_);
        append_value_branch(block_);
        append_avro_bytes(scratch_, block_);
    }

    avro_layout layout_;
    avro_codec codec_;
    bool micros_;
    std::size_t block_bytes_;
    avro_sync_marker sync_;
    tabular_extractor extractor_;
    std::shared_ptr<detail::avro_codec_pool> pool_;
    std::string scratch_;     // one formatted field at a time
    std::string block_;       // the open block, uncompressed
    std::int64_t count_ = 0;  // records in the open block
    std::string out_;         // header and finished blocks
};

}  // namespace

void append_avro_long(std::int64_t v, std::string& out) {
    std::uint64_t z = (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63);
    char buf[10];
    std::size_t n = 0;
    while (z >= 0x80) {
        buf[n++] = static_cast<char>((z & 0x7F) | 0x80);
        z >>= 7;
    }
    buf[n++] = static_cast<char>(z);
    out.append(buf, n);
}

avro_sync_marker avro_sync_marker_for(std::string_view object_key) noexcept {
    const auto digest = sha256(object_key);
    avro_sync_marker m;
    std::memcpy(m.data(), digest.data(), m.size());
    return m;
}

std::string_view avro_codec_name(avro_codec c) noexcept {
    switch (c) {
        case avro_codec::null:
            return "null";
        case avro_codec::deflate:
            return "deflate";
        case avro_codec::snappy:
            return "snappy";
        case avro_codec::zstandard:
            return "zstandard";
    }
    return "null";
}

error_code parse_avro_codec(std::string_view name, avro_codec& out, diagnostics& diag) {
    for (avro_codec c :
         {avro_codec::null, avro_codec::deflate, avro_codec::snappy, avro_codec::zstandard}) {
        if (name == avro_codec_name(c)) {
            out = c;
            return {};
        }
    }
    diag.message = "avro.codec must be one of null, deflate, snappy, zstandard";
    return penne::errc::invalid_config;
}

error_code validate(const avro_options& opts, diagnostics& diag) {
    if (opts.layout != avro_layout::penne && opts.layout != avro_layout::rigatoni) {
        diag.message = "avro.layout must be \"penne\" or \"rigatoni\"";
        return penne::errc::invalid_config;
    }
    if (opts.mode != ejson_mode::relaxed && opts.mode != ejson_mode::canonical) {
        diag.message = "avro.json_mode must be \"relaxed\" or \"canonical\"";
        return penne::errc::invalid_config;
    }
    if (opts.codec != avro_codec::null && opts.codec != avro_codec::deflate &&
        opts.codec != avro_codec::snappy && opts.codec != avro_codec::zstandard) {
        diag.message = "avro.codec must be one of null, deflate, snappy, zstandard";
        return penne::errc::invalid_config;
    }
    const int top = max_level(opts.codec);
    if (opts.level < 0 || opts.level > top) {
        diag.message = "avro.level must be ";
        if (top == 0) {
            diag.message += "0 (unset) for the ";
            diag.message.append(avro_codec_name(opts.codec));
            diag.message += " codec";
        } else {
            diag.message += "0 (the default) or 1-" + std::to_string(top) + " for the ";
            diag.message.append(avro_codec_name(opts.codec));
            diag.message += " codec";
        }
        return penne::errc::invalid_config;
    }
    if (opts.block_bytes < avro_min_block_bytes || opts.block_bytes > avro_max_block_bytes) {
        diag.message = "avro.block_bytes must be between 1024 and 67108864";
        return penne::errc::invalid_config;
    }
    if (opts.timestamp_unit != avro_timestamp_unit::millis &&
        opts.timestamp_unit != avro_timestamp_unit::micros) {
        diag.message = "avro.timestamp_unit must be \"millis\" or \"micros\"";
        return penne::errc::invalid_config;
    }
    return {};
}

avro_encoder_factory::avro_encoder_factory() : avro_encoder_factory(avro_options{}) {}

avro_encoder_factory::avro_encoder_factory(const avro_options& opts) : opts_(opts) {
    if (opts_.level == 0)
        opts_.level = default_level(opts_.codec);
    schema_ = opts_.layout == avro_layout::rigatoni ? std::string(rigatoni_schema)
                                                    : penne_schema(opts_.timestamp_unit);
    pool_ = std::make_shared<detail::avro_codec_pool>(opts_.codec, opts_.level);
    pool_->idle.reserve(detail::avro_codec_pool::max_idle);
}

error_code avro_encoder_factory::create(const avro_options& opts,
                                        std::unique_ptr<avro_encoder_factory>& out,
                                        diagnostics& diag) {
    if (auto ec = validate(opts, diag))
        return ec;
    out.reset(new avro_encoder_factory(opts));
    return {};
}

encoder_info avro_encoder_factory::info() const noexcept {
    return {"avro", "application/avro", true};
}

std::unique_ptr<batch_encoder> avro_encoder_factory::open(std::string_view object_key) const {
    return std::make_unique<avro_encoder>(opts_, schema_, pool_, object_key);
}

}  // namespace penne::formats
