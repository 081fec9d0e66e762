#include <penne/filter.hpp>
#include <penne/formats/ejson.hpp>
#include <penne/mongo/bson.hpp>
#include <penne/mongo/commands.hpp>

#include "detail/filter_adapter.hpp"

namespace penne {

std::string to_extended_json(const change_event& ev, bool canonical) {
    std::string out;
    if (!formats::write_ejson(
            ev.raw, canonical ? formats::ejson_mode::canonical : formats::ejson_mode::relaxed, out))
        out.clear();
    return out;
}

namespace detail {

filter_verdict filter_adapter::apply(const change_event& in, filtered_event& out,
                                     diagnostics& diag) const {
    event_replacement rep;
    switch (fn_(in, rep)) {
        case filter_decision::keep:
            return filter_verdict::keep;
        case filter_decision::drop:
            return filter_verdict::drop;
        case filter_decision::replace:
            break;
    }
    if (!rep.bson.empty()) {
        out.storage = std::move(rep.bson);
    } else {
        std::string error;
        auto doc = mongo::document::from_json(rep.json, error);
        if (!doc) {
            diag.message = "the replacement is not valid Extended JSON: " + error;
            return filter_verdict::fail;
        }
        const auto bytes = doc->bytes();
        out.storage.assign(bytes.begin(), bytes.end());
    }
    const byte_view view(out.storage.data(), out.storage.size());
    if (!mongo::is_document(view)) {
        diag.message = "the replacement is not a BSON document";
        return filter_verdict::fail;
    }
    if (auto ec = mongo::parse_change_event(view, out.event)) {
        diag.message = "the replacement is not a change event (" + ec.message() +
                       "): it must keep _id, operationType, ns and clusterTime";
        return filter_verdict::fail;
    }
    if (out.event.operation != in.operation || out.event.db != in.db || out.event.coll != in.coll ||
        out.event.time != in.time) {
        diag.message = "the replacement must keep the event's operationType, ns and clusterTime";
        return filter_verdict::fail;
    }
    return filter_verdict::replace;
}

}  // namespace detail
}  // namespace penne
