#include <penne/error.hpp>

#include <boost/asio/error.hpp>
#include <boost/system/errc.hpp>

namespace penne {
namespace {

class penne_category_impl final : public classified_category {
public:
    const char* name() const noexcept override { return "penne"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::timeout:
                return "operation timed out";
            case errc::cancelled:
                return "operation cancelled";
            case errc::invalid_config:
                return "invalid configuration";
            case errc::protocol_error:
                return "protocol error";
            case errc::history_lost:
                return "resume point is no longer in the oplog";
            case errc::permanent_rejection:
                return "destination rejected the object";
            case errc::unencodable_event:
                return "event cannot be encoded in this format";
            case errc::state_corrupt:
                return "state store content is unreadable";
            case errc::lease_lost:
                return "lease lost to another instance";
            case errc::io_error:
                return "local I/O error";
        }
        return "unknown penne error";
    }
    bool retryable(int ev) const noexcept override {
        switch (static_cast<errc>(ev)) {
            case errc::timeout:
            case errc::io_error:
                return true;
            default:
                return false;
        }
    }
};

bool system_retryable(const error_code& ec) noexcept {
    namespace ae = boost::asio::error;
    using boost::system::errc::errc_t;
    if (ec == ae::eof || ec == ae::connection_reset || ec == ae::connection_refused ||
        ec == ae::connection_aborted || ec == ae::timed_out || ec == ae::broken_pipe ||
        ec == ae::host_unreachable || ec == ae::network_unreachable || ec == ae::network_down ||
        ec == ae::network_reset || ec == ae::try_again || ec == ae::host_not_found_try_again ||
        ec == ae::shut_down)
        return true;
    return false;
}

}  // namespace

const boost::system::error_category& penne_category() noexcept {
    static const penne_category_impl cat;
    return cat;
}

bool is_retryable(const error_code& ec) noexcept {
    if (!ec)
        return false;
    if (auto* c = dynamic_cast<const classified_category*>(&ec.category())) {
        return c->retryable(ec.value());
    }
    return system_retryable(ec);
}

}  // namespace penne
