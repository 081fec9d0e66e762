#pragma once
// A fresh directory under $TMPDIR removed with its content at scope exit (kept when
// PENNE_KEEP_TEST_DIRS is set, for post-mortems).

#include <filesystem>
#include <string>

namespace penne::test {

class temp_dir {
public:
    explicit temp_dir(const std::string& tag = "penne");
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const std::filesystem::path& path() const noexcept { return path_; }
    std::string operator/(const std::string& rel) const { return (path_ / rel).string(); }

private:
    std::filesystem::path path_;
};

}  // namespace penne::test
