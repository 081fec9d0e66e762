#pragma once
// Library-internal: adapts a user's filter_function (filter.hpp) to the engine's
// event_filter, parsing replacement documents back into change events.
//
// Thread safety: apply() keeps no state of its own (the engine passes per-scope storage),
// so it is as thread-safe as the user's function.

#include <penne/event_filter.hpp>
#include <penne/filter.hpp>

namespace penne::detail {

class filter_adapter final : public event_filter {
public:
    explicit filter_adapter(filter_function fn) : fn_(std::move(fn)) {}
    filter_verdict apply(const change_event& in, filtered_event& out,
                         diagnostics& diag) const override;

private:
    filter_function fn_;
};

}  // namespace penne::detail
