#include "temp_dir.hpp"

#include <cstdlib>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace penne::test {

temp_dir::temp_dir(const std::string& tag) {
    auto base = std::filesystem::temp_directory_path() / (tag + "-XXXXXX");
    std::string tmpl = base.string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data()))
        throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = buf.data();
}

temp_dir::~temp_dir() {
    if (std::getenv("PENNE_KEEP_TEST_DIRS"))
        return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

}  // namespace penne::test
