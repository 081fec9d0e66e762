// The default record_many() of state stores and lease stores: one record() after the
// other, stopping at the first error (so what is durable is always a prefix).

#include <penne/lease.hpp>
#include <penne/state_store.hpp>

namespace penne {

boost::asio::awaitable<error_code> state_store::record_many(const std::string& scope_id,
                                                            std::span<const manifest_entry> entries,
                                                            diagnostics& diag) {
    for (const auto& entry : entries) {
        error_code ec = co_await record(scope_id, entry, diag);
        if (ec)
            co_return ec;
    }
    co_return error_code{};
}

boost::asio::awaitable<error_code> lease_store::record_many(const std::string& scope_id,
                                                            std::uint64_t fence,
                                                            std::span<const manifest_entry> entries,
                                                            diagnostics& diag) {
    for (const auto& entry : entries) {
        error_code ec = co_await record(scope_id, fence, entry, diag);
        if (ec)
            co_return ec;
    }
    co_return error_code{};
}

}  // namespace penne
