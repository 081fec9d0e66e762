#include <penne/callback_destination.hpp>

namespace penne {

callback_destination::callback_destination(awaitable_callback cb, std::string name)
    : async_(std::move(cb)), name_(std::move(name)) {}

callback_destination::callback_destination(plain_callback cb, std::string name)
    : plain_(std::move(cb)), name_(std::move(name)) {}

boost::asio::awaitable<error_code> callback_destination::put(const sealed_object& obj,
                                                             diagnostics& diag) {
    if (async_)
        co_return co_await async_(obj, diag);
    if (plain_)
        co_return plain_(obj, diag);
    diag.message = "callback destination " + name_ + " has no callback";
    co_return make_error_code(errc::invalid_config);
}

boost::asio::awaitable<error_code> callback_destination::check(diagnostics&) {
    co_return error_code{};
}

std::string callback_destination::describe() const {
    return "callback:" + name_;
}

}  // namespace penne
