#pragma once
// penne::formats::object_compressor: the engine's whole-object compressor (penne::compressor)
// backed by a compressor_pool, so contexts are shared by every collection and created only
// under load. Thread safety: compress() may be called from several strands at once.

#include <penne/compressor.hpp>
#include <penne/formats/compress.hpp>

namespace penne::formats {

class object_compressor final : public penne::compressor {
public:
    // `opts` must have passed validate()/parse_compression().
    explicit object_compressor(compression_options opts, std::size_t max_idle = 4)
        : pool_(opts, max_idle) {}

    std::string_view extension() const noexcept override {
        auto ext = file_extension(pool_.options().codec);
        return ext.empty() ? ext : ext.substr(1);  // without the dot
    }
    std::string_view content_encoding() const noexcept override {
        return formats::content_encoding(pool_.options().codec);
    }
    error_code compress(std::string_view in, std::string& out) override {
        return pool_.compress(in, out);
    }

private:
    compressor_pool pool_;
};

}  // namespace penne::formats
