#include "retryable_writes.hpp"

#include <algorithm>
#include <vector>

namespace mongosim {

std::optional<retryable_write_table::write_id> retryable_write_table::identify(
    std::string_view command_name, const bson_t& cmd) {
    if (command_name != "insert" && command_name != "update" && command_name != "delete" &&
        command_name != "findAndModify")
        return std::nullopt;
    bson_iter_t it;
    if (bson_iter_init_find(&it, &cmd, "autocommit"))
        return std::nullopt;
    std::int64_t txn = 0;
    if (!bson_iter_init_find(&it, &cmd, "txnNumber"))
        return std::nullopt;
    if (BSON_ITER_HOLDS_INT64(&it))
        txn = bson_iter_int64(&it);
    else if (BSON_ITER_HOLDS_INT32(&it))
        txn = bson_iter_int32(&it);
    else
        return std::nullopt;
    if (!bson_iter_init_find(&it, &cmd, "lsid") || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return std::nullopt;
    std::uint32_t len = 0;
    const std::uint8_t* data = nullptr;
    bson_iter_document(&it, &len, &data);
    return write_id{std::string(reinterpret_cast<const char*>(data), len), txn};
}

retryable_write_table::lookup retryable_write_table::check(const write_id& id) {
    auto it = sessions_.find(id.session);
    if (it == sessions_.end())
        return {};
    it->second.last_used = ++tick_;
    if (id.txn_number < it->second.txn_number)
        return {verdict::too_old, nullptr, it->second.txn_number};
    if (id.txn_number == it->second.txn_number && it->second.reply)
        return {verdict::replay, it->second.reply.get(), it->second.txn_number};
    return {};
}

void retryable_write_table::remember(const write_id& id, const bson_t& reply) {
    bson_ptr kept = make_bson();
    bson_iter_t it;
    bson_iter_init(&it, &reply);
    while (bson_iter_next(&it)) {
        const std::string_view k = key_of(it);
        if (k == "ok" || k == "$clusterTime" || k == "operationTime" || k == "errorLabels" ||
            k == "writeConcernError")
            continue;
        bson_append_iter(kept.get(), k.data(), static_cast<int>(k.size()), &it);
    }
    entry& e = sessions_[id.session];
    if (id.txn_number < e.txn_number)
        return;  // a later write of the session completed meanwhile; keep its result
    e.txn_number = id.txn_number;
    e.reply = std::move(kept);
    e.last_used = ++tick_;
    if (sessions_.size() > max_sessions_)
        evict();
}

void retryable_write_table::evict() {
    // Forget the least recently used tenth of the sessions (drivers end idle sessions long
    // before; mongod expires them after 30 minutes).
    std::vector<std::uint64_t> ages;
    ages.reserve(sessions_.size());
    for (const auto& [k, e] : sessions_)
        ages.push_back(e.last_used);
    const std::size_t drop = std::max<std::size_t>(1, sessions_.size() / 10);
    std::nth_element(ages.begin(), ages.begin() + static_cast<std::ptrdiff_t>(drop - 1),
                     ages.end());
    const std::uint64_t cutoff = ages[drop - 1];
    std::erase_if(sessions_, [&](const auto& kv) { return kv.second.last_used <= cutoff; });
}

}  // namespace mongosim
