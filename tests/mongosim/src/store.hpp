#pragma once
// The data a replica-set primary holds: databases, collections and documents, plus the update
// language ($set, $unset, $inc, ...). Documents are immutable once stored (an update stores a
// new document under the same slot), so cursors and change events can share them without
// copying and still see the version they were created with.
//
// Thread safety: none; owned by the server and used from its single thread.

#include "query.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace mongosim {

struct collection {
    std::map<std::uint64_t, shared_doc> docs;              // slot -> document, in insertion order
    std::unordered_map<std::string, std::uint64_t> by_id;  // id_key(_id) -> slot
    std::uint64_t next_slot = 1;
    std::array<std::uint8_t, 16> uuid{};
    bson_ptr options = make_bson();
    std::vector<bson_ptr> indexes;  // specs from createIndexes (not enforced beyond _id)
    // changeStreamPreAndPostImages.enabled: writes record the document's before and after
    // images for change streams (fullDocumentBeforeChange, fullDocument: whenAvailable).
    bool pre_and_post_images = false;

    // Stores a new document; fails with DuplicateKey (11000) when its _id exists.
    failure insert(shared_doc doc);
    // Looks a document up by _id value.
    shared_doc find_id(const bson_value_t& id) const;
};

struct database {
    std::map<std::string, collection> collections;
};

class store {
public:
    collection* find(const std::string& db, const std::string& coll);
    // Returns the collection, creating it (and its database) when absent.
    collection& obtain(const std::string& db, const std::string& coll, bool& created);
    bool drop(const std::string& db, const std::string& coll);
    // Removes the collection and returns it, for renames.
    bool extract(const std::string& db, const std::string& coll, collection& out);
    void put(const std::string& db, const std::string& coll, collection&& c);
    std::map<std::string, database>& databases() noexcept { return dbs_; }
    // True when the collection with this UUID was dropped: its pre- and post-images went with
    // it (mongod deletes them from config.system.preimages), so events still in the oplog have
    // none.
    bool images_dropped(const std::array<std::uint8_t, 16>& uuid) const {
        return dropped_.contains(uuid);
    }

private:
    std::map<std::string, database> dbs_;
    std::set<std::array<std::uint8_t, 16>> dropped_;
};

// Changes that an update made, in change-event form.
struct update_diff {
    bson_ptr updated_fields = make_bson();
    std::vector<std::string> removed_fields;
};

// True when the document's keys are update operators ($set, ...), false for a replacement.
bool is_operator_update(const bson_t& update);

// Applies operator updates to doc (nullptr when building an upsert). `inserting` enables
// $setOnInsert. out receives the new document; diff what changed.
failure apply_update(const bson_t* doc, const bson_t& update, bool inserting, bson_ptr& out,
                     update_diff& diff);

// The document an upsert starts from: the filter's equality fields.
failure upsert_seed(const bson_t& filter, bson_ptr& out);

// Returns doc with _id as its first field, generating an ObjectId when it has none.
bson_ptr with_leading_id(const bson_t& doc);

// Checks a document for storage: size, and no top-level "$" field names.
failure validate_for_storage(const bson_t& doc);

}  // namespace mongosim
