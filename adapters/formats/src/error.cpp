#include <penne/formats/error.hpp>

namespace penne::formats {
namespace {

class formats_category_impl final : public classified_category {
public:
    const char* name() const noexcept override { return "penne.formats"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::unknown_codec:
                return "unknown compression codec";
            case errc::invalid_level:
                return "compression level out of range";
            case errc::compression_failed:
                return "compression failed";
            case errc::corrupt_input:
                return "compressed data is corrupt";
            case errc::truncated_input:
                return "compressed data is truncated";
            case errc::output_limit:
                return "decompressed data exceeds the size limit";
        }
        return "unknown formats error";
    }
    bool retryable(int ev) const noexcept override {
        // Only a library failure (memory pressure) can go away by itself.
        return static_cast<errc>(ev) == errc::compression_failed;
    }
};

}  // namespace

const boost::system::error_category& formats_category() noexcept {
    static const formats_category_impl cat;
    return cat;
}

}  // namespace penne::formats
