#pragma once
// Owning handles for libbson documents, shared by the codec, the store and the commands.
// bson_t must not be moved by value (it may hold its bytes inline), so documents live on the
// heap behind a unique_ptr (mutable, single owner) or a shared_ptr to const (stored documents
// and snapshots handed to cursors, which outlive later updates of the same _id).
//
// Thread safety: none; mongosim runs on one thread.

#include <bson/bson.h>

#include <cstdint>
#include <memory>
#include <string_view>

namespace mongosim {

struct bson_deleter {
    void operator()(bson_t* b) const noexcept { bson_destroy(b); }
};
// bson_t carries an alignment attribute that template arguments drop; harmless here, since
// the pointee is always allocated by libbson itself.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"
using bson_ptr = std::unique_ptr<bson_t, bson_deleter>;
using shared_doc = std::shared_ptr<const bson_t>;
#pragma GCC diagnostic pop

// A non-owning view of a document's bytes, storable in containers. (A bson_t must never be
// copied: one made by bson_init_static points into itself.) Read it through a local bson_t:
//     bson_t d; bson_init_static(&d, v.data, v.len);
struct doc_view {
    const std::uint8_t* data;
    std::uint32_t len;
};

inline bson_ptr make_bson() {
    return bson_ptr(bson_new());
}
inline bson_ptr copy_bson(const bson_t* b) {
    return bson_ptr(bson_copy(b));
}
inline shared_doc share(bson_ptr b) {
    return shared_doc(b.release(), bson_deleter{});
}

inline std::string_view key_of(const bson_iter_t& it) {
    return {bson_iter_key(&it), bson_iter_key_len(&it)};
}

}  // namespace mongosim
