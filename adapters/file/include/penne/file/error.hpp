#pragma once
// Errors specific to the file adapter. Most failures are reported with the engine's own
// codes (errc::io_error, errc::state_corrupt, errc::permanent_rejection) because the
// engine reacts to them generically; this category holds the conditions that only make
// sense for a directory on local disk.
//
// Thread safety: the category is immutable and may be used from any thread.

#include <penne/error.hpp>

#include <type_traits>

namespace penne::file {

enum class errc {
    // Another process holds the state directory's lock: two penne instances were given
    // the same state directory. Fatal, since retrying would only race the other owner.
    state_dir_in_use = 1,
};

const boost::system::error_category& file_category() noexcept;

inline error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), file_category()};
}

}  // namespace penne::file

template <>
struct boost::system::is_error_code_enum<penne::file::errc> : std::true_type {};
