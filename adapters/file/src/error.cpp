#include <penne/file/error.hpp>

namespace penne::file {
namespace {

class file_category_impl final : public classified_category {
public:
    const char* name() const noexcept override { return "penne.file"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::state_dir_in_use:
                return "state directory is in use by another process";
        }
        return "unknown penne.file error";
    }
    bool retryable(int ev) const noexcept override {
        switch (static_cast<errc>(ev)) {
            case errc::state_dir_in_use:
                return false;
        }
        return false;
    }
};

}  // namespace

const boost::system::error_category& file_category() noexcept {
    static const file_category_impl cat;
    return cat;
}

}  // namespace penne::file
