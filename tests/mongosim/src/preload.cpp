#include "preload.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace mongosim {
namespace {

// Words for the free-text fields: text compresses like text, not like a run of one letter.
constexpr std::array<std::string_view, 48> words = {
    "order",    "shipped",  "customer", "express",   "warehouse", "delivery", "invoice",  "payment",
    "pending",  "returned", "package",  "fragile",   "priority",  "standard", "tracking", "address",
    "discount", "coupon",   "refund",   "exchange",  "gift",      "wrapped",  "morning",  "evening",
    "weekend",  "courier",  "parcel",   "signature", "required",  "leave",    "at",       "door",
    "call",     "before",   "arrival",  "the",       "and",       "with",     "for",      "please",
    "thanks",   "second",   "floor",    "building",  "north",     "south",    "gate",     "code"};
constexpr std::array<std::string_view, 8> first_names = {"Ada",     "Grace",  "Alan",    "Edsger",
                                                         "Barbara", "Donald", "Frances", "Niklaus"};
constexpr std::array<std::string_view, 8> last_names = {"Lovelace", "Hopper", "Turing", "Dijkstra",
                                                        "Liskov",   "Knuth",  "Allen",  "Wirth"};
constexpr std::array<std::string_view, 6> cities = {"Lisbon", "Oslo",  "Kyoto",
                                                    "Quito",  "Perth", "Lyon"};
constexpr std::array<std::string_view, 4> statuses = {"pending", "paid", "packed", "shipped"};
constexpr std::array<std::string_view, 4> tiers = {"bronze", "silver", "gold", "platinum"};

class generator {
public:
    explicit generator(const preload_options& o)
        : opts_(o), rng_(o.seed), live_(o.databases * o.collections) {
        for (std::size_t d = 0; d < o.databases; ++d)
            dbs_.push_back(d == 0 ? o.db : o.db + "_" + std::to_string(d));
        for (std::size_t c = 0; c < o.collections; ++c)
            colls_.push_back("coll" + std::to_string(c));
        // A fixed ObjectId prefix from the seed: ids never depend on the clock or the host.
        const std::uint64_t s = o.seed * 0x9E3779B97F4A7C15ull;
        for (int i = 0; i < 5; ++i)
            oid_mid_[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(s >> (8 * i));
    }

    event_record next(preload_summary& sum) {
        const std::size_t pair = pick(live_.size());
        auto& ids = live_[pair];
        event_record e;
        e.db = dbs_[pair / opts_.collections];
        e.coll = colls_[pair % opts_.collections];
        const std::uint64_t roll = pick(100);
        if (ids.empty() || roll < 70) {
            const std::uint64_t n = next_id_++;
            e.op = op_type::insert;
            e.full_document = share(order(n));
            e.document_key = key(n);
            ids.push_back(n);
            ++sum.inserts;
            sum.bson_bytes += e.full_document->len;
        } else if (roll < 95) {
            e.op = op_type::update;
            e.document_key = key(ids[pick(ids.size())]);
            e.update_description = update();
            ++sum.updates;
            sum.bson_bytes += e.update_description->len;
        } else {
            const std::size_t pos = pick(ids.size());
            e.op = op_type::remove;
            e.document_key = key(ids[pos]);
            ids[pos] = ids.back();
            ids.pop_back();
            ++sum.deletes;
        }
        sum.bson_bytes += e.document_key->len;
        return e;
    }

private:
    // Uniform in [0, n); modulo bias is irrelevant here, determinism across libraries is not
    // (std::uniform_int_distribution differs between standard libraries).
    std::uint64_t pick(std::uint64_t n) { return rng_() % n; }

    template <std::size_t N>
    std::string_view any(const std::array<std::string_view, N>& from) {
        return from[pick(N)];
    }

    bson_oid_t oid(std::uint64_t n) const {
        std::uint8_t b[12];
        const std::uint32_t secs = 1'700'000'000u + static_cast<std::uint32_t>(n / 1000);
        for (int i = 0; i < 4; ++i)
            b[i] = static_cast<std::uint8_t>(secs >> (24 - 8 * i));
        std::copy(oid_mid_.begin(), oid_mid_.end(), b + 4);
        for (int i = 0; i < 3; ++i)
            b[9 + i] = static_cast<std::uint8_t>(n >> (16 - 8 * i));
        bson_oid_t id;
        bson_oid_init_from_data(&id, b);
        return id;
    }

    shared_doc key(std::uint64_t n) const {
        bson_ptr k = make_bson();
        bson_oid_t id = oid(n);
        bson_append_oid(k.get(), "_id", 3, &id);
        return share(std::move(k));
    }

    void append_sv(bson_t* d, const char* name, std::string_view v) {
        bson_append_utf8(d, name, -1, v.data(), static_cast<int>(v.size()));
    }

    void append_text(bson_t* d, const char* name, std::size_t bytes) {
        text_.clear();
        while (text_.size() < bytes) {
            if (!text_.empty())
                text_ += ' ';
            text_ += any(words);
        }
        text_.resize(bytes);
        append_sv(d, name, text_);
    }

    // An order document of about opts_.doc_bytes BSON bytes.
    bson_ptr order(std::uint64_t n) {
        bson_t d;
        bson_init(&d);
        bson_oid_t id = oid(n);
        bson_append_oid(&d, "_id", 3, &id);
        bson_append_int64(&d, "orderNo", 7, static_cast<std::int64_t>(100'000 + n));
        bson_t cust;
        bson_append_document_begin(&d, "customer", 8, &cust);
        const std::uint64_t cid = pick(100'000);
        std::string name = std::string(any(first_names)) + " " + std::string(any(last_names));
        append_sv(&cust, "id", "cust-" + std::to_string(cid));
        append_sv(&cust, "name", name);
        append_sv(&cust, "email", "customer" + std::to_string(cid) + "@example.com");
        append_sv(&cust, "tier", any(tiers));
        bson_append_document_end(&d, &cust);
        append_sv(&d, "status", any(statuses));
        const std::int64_t created = 1'700'000'000'000 + static_cast<std::int64_t>(n) * 37;
        bson_append_date_time(&d, "created", 7, created);
        bson_append_date_time(&d, "updated", 7, created);
        bson_append_utf8(&d, "currency", 8, "EUR", 3);
        bson_t items;
        bson_append_array_begin(&d, "items", 5, &items);
        const std::uint64_t count = 1 + pick(4);
        double total = 0;
        for (std::uint64_t i = 0; i < count; ++i) {
            char index[4] = {static_cast<char>('0' + i), 0};
            bson_t item;
            bson_append_document_begin(&items, index, -1, &item);
            append_sv(&item, "sku", "SKU-" + std::to_string(10'000 + pick(90'000)));
            const auto qty = static_cast<std::int32_t>(1 + pick(5));
            const double price = static_cast<double>(100 + pick(99'900)) / 100.0;
            bson_append_int32(&item, "qty", 3, qty);
            bson_append_double(&item, "price", 5, price);
            bson_append_document_end(&items, &item);
            total += qty * price;
        }
        bson_append_array_end(&d, &items);
        bson_append_double(&d, "amount", 6, total);
        bson_t ship;
        bson_append_document_begin(&d, "shipping", 8, &ship);
        append_sv(&ship, "street",
                  std::to_string(1 + pick(200)) + " " + std::string(any(words)) + " street");
        append_sv(&ship, "city", any(cities));
        append_sv(&ship, "zip", std::to_string(10'000 + pick(90'000)));
        bson_append_bool(&ship, "express", 7, pick(4) == 0);
        bson_append_document_end(&d, &ship);
        bson_t tags;
        bson_append_array_begin(&d, "tags", 4, &tags);
        append_sv(&tags, "0", any(words));
        append_sv(&tags, "1", any(words));
        bson_append_array_end(&d, &tags);
        bson_append_int32(&d, "version", 7, 1);
        // Free text fills the document up to the target size ("notes" costs 12 bytes of
        // framing: type, name, length, terminating NUL).
        const std::size_t have = d.len + 12;
        append_text(&d, "notes", opts_.doc_bytes > have ? opts_.doc_bytes - have : 0);
        bson_ptr out(bson_copy(&d));
        bson_destroy(&d);
        return out;
    }

    // updateDescription of an order moving on: new status, time, amount and version.
    bson_ptr update() {
        bson_ptr u = make_bson();
        bson_t fields, removed, truncated;
        bson_append_document_begin(u.get(), "updatedFields", 13, &fields);
        append_sv(&fields, "status", any(statuses));
        bson_append_date_time(&fields, "updated", 7,
                              1'700'000'000'000 + static_cast<std::int64_t>(pick(1u << 30)));
        bson_append_double(&fields, "amount", 6, static_cast<double>(pick(100'000)) / 100.0);
        bson_append_int32(&fields, "version", 7, static_cast<std::int32_t>(2 + pick(8)));
        if (pick(4) == 0)
            append_text(&fields, "notes", 40 + pick(80));
        bson_append_document_end(u.get(), &fields);
        bson_append_array_begin(u.get(), "removedFields", 13, &removed);
        if (pick(10) == 0)
            append_sv(&removed, "0", "coupon");
        bson_append_array_end(u.get(), &removed);
        bson_append_array_begin(u.get(), "truncatedArrays", 15, &truncated);
        bson_append_array_end(u.get(), &truncated);
        return u;
    }

    const preload_options& opts_;
    std::mt19937_64 rng_;
    std::vector<std::string> dbs_, colls_;
    std::vector<std::vector<std::uint64_t>> live_;  // live order numbers per (db, coll)
    std::uint64_t next_id_ = 0;
    std::array<std::uint8_t, 5> oid_mid_{};
    std::string text_;
};

}  // namespace

preload_summary preload(oplog& log, const preload_options& opts) {
    preload_summary sum;
    if (opts.events == 0 || opts.databases == 0 || opts.collections == 0)
        return sum;
    const auto start = std::chrono::steady_clock::now();
    generator gen(opts);
    for (std::uint64_t i = 0; i < opts.events; ++i)
        log.append(gen.next(sum));
    sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return sum;
}

}  // namespace mongosim
