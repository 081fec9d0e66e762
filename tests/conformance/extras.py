"""pymongo 3.11 (Debian's python3-pymongo, run with /usr/bin/python3) against mongosim in what a
reviewer's own script does besides change_stream.py, each step asserting what a MongoDB 7.0
replica set answers: watch() with full_document='updateLookup', start_at_operation_time,
batch_size and max_await_time_ms (try_next on an idle stream returns None within it); indexes,
list_collection_names / list_databases with filters and nameOnly, find with
sort/skip/limit/projection/batch_size, count_documents, estimated_document_count, distinct,
find_one_and_update/replace/delete, $regex, $size, $all, $elemMatch, $not and $type filters;
change stream stages $addFields, $set, $unset, $replaceRoot and $replaceWith; aggregate
$unwind, $addFields, $unset and $replaceWith.

    /usr/bin/python3 extras.py 'mongodb://127.0.0.1:PORT/?replicaSet=rs0'

Exit status 0 and a last line "OK ..." on success; 1 with the first mismatch otherwise.
"""

import os
import re
import sys
import time
import traceback

import pymongo
from bson.regex import Regex
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.errors import OperationFailure


def watch(db):
    coll = db.stream
    start = db.command("ping")["operationTime"]
    coll.insert_one({"_id": 1, "n": 1})
    coll.update_one({"_id": 1}, {"$set": {"m": "x"}})
    for i in range(2, 7):
        coll.insert_one({"_id": i})

    # From an operation time, with updateLookup and batches of two.
    stream = coll.watch(full_document="updateLookup", start_at_operation_time=start,
                        batch_size=2, max_await_time_ms=300)
    first = [stream.next() for _ in range(7)]
    ops = [(e["operationType"], e["documentKey"]["_id"]) for e in first]
    assert ops == [("insert", 1), ("update", 1)] + [("insert", i) for i in range(2, 7)], ops
    assert first[1]["fullDocument"] == {"_id": 1, "n": 1, "m": "x"}, first[1]
    assert first[1]["updateDescription"]["updatedFields"] == {"m": "x"}, first[1]
    assert stream.resume_token == first[-1]["_id"], stream.resume_token

    # Idle: try_next gives None after one awaitData getMore, and the token stays usable.
    began = time.monotonic()
    assert stream.try_next() is None
    waited = time.monotonic() - began
    assert 0.2 <= waited < 2.0, "try_next waited %.3f s for max_await_time_ms=300" % waited
    coll.insert_one({"_id": 7})
    later = stream.next()
    assert later["documentKey"] == {"_id": 7}, later
    stream.close()

    # Starting at the update's clusterTime gives the update first.
    again = coll.watch(start_at_operation_time=first[1]["clusterTime"], max_await_time_ms=200)
    e = again.next()
    assert (e["operationType"], e["_id"]) == ("update", first[1]["_id"]), e
    again.close()
    return "updateLookup, start_at_operation_time, batch_size, max_await_time_ms"


def stages(db):
    coll = db.shaped
    start = db.command("ping")["operationTime"]
    coll.insert_one({"_id": 1, "a": {"b": 2}, "arr": [{"k": 1}, {"k": 2}], "big": "x"})

    def first(pipeline):
        stream = coll.watch(pipeline, start_at_operation_time=start, max_await_time_ms=100)
        try:
            return stream.next()
        finally:
            stream.close()

    e = first([{"$addFields": {"x": "$fullDocument.a.b", "lit": {"$literal": "$notpath"},
                               "ks": "$fullDocument.arr.k", "fullDocument.extra": 5}},
               {"$match": {"x": 2}}])
    assert (e["x"], e["lit"], e["ks"], e["fullDocument"]["extra"]) == (2, "$notpath", [1, 2], 5), e
    e = first([{"$set": {"tag": "t"}}, {"$unset": ["fullDocument.big", "ns"]},
               {"$match": {"tag": "t"}}])
    assert "ns" not in e and "big" not in e["fullDocument"] and e["tag"] == "t", e
    e = first([{"$replaceWith": {"_id": "$_id", "doc": "$fullDocument"}}])
    assert set(e) == {"_id", "doc"} and e["doc"]["_id"] == 1, e
    # Replacing the root with the document loses the resume token: the stream fails (280).
    for pipeline, code in (([{"$replaceRoot": {"newRoot": "$fullDocument"}}], 280),
                           ([{"$addFields": {"x": {"$concat": ["a", "b"]}}}], 168)):
        try:
            first(pipeline)
            raise AssertionError("accepted %r" % pipeline)
        except OperationFailure as err:
            assert err.code == code, err
    # Projecting out _id is accepted by the aggregate; the first event fails the stream.
    no_id = coll.watch([{"$project": {"_id": 0}}], max_await_time_ms=100)
    assert no_id.try_next() is None
    coll.insert_one({"_id": 2})
    try:
        no_id.next()
        raise AssertionError("an event without its _id was returned")
    except OperationFailure as err:
        assert err.code == 280, err
    return "$addFields/$set/$unset/$replaceWith/$project in a change stream, 280 on a lost _id"


def helpers(client, db):
    coll = db.items
    assert coll.create_index([("n", ASCENDING)]) == "n_1"
    assert coll.create_index("sku", unique=True, name="by_sku") == "by_sku"
    assert [i["name"] for i in coll.list_indexes()] == ["_id_", "n_1", "by_sku"]
    assert coll.index_information()["by_sku"]["unique"] is True
    coll.insert_many([{"_id": i, "n": i % 3, "s": "x%d" % i, "sku": i} for i in range(10)])
    db.create_collection("other")
    assert sorted(db.list_collection_names()) == ["items", "other", "shaped", "stream"]
    assert db.list_collection_names(filter={"name": "other"}) == ["other"]
    infos = list(db.list_collections(filter={"name": "items"}))
    assert len(infos) == 1 and infos[0]["type"] == "collection", infos
    dbs = list(client.list_databases(filter={"name": db.name}, nameOnly=True))
    assert dbs == [{"name": db.name}], dbs
    assert db.name in client.list_database_names()

    page = list(coll.find({"n": {"$gte": 1}}, {"s": 1, "_id": 0})
                .sort("_id", DESCENDING).skip(1).limit(3))
    assert page == [{"s": "x7"}, {"s": "x5"}, {"s": "x4"}], page
    two_keys = [d["_id"] for d in coll.find({}, {"n": 1}).sort([("n", ASCENDING),
                                                                ("_id", DESCENDING)]).limit(4)]
    assert two_keys == [9, 6, 3, 0], two_keys
    assert len(list(coll.find().batch_size(3))) == 10
    assert list(coll.find({"n": 1}, {"_id": 1})) == [{"_id": 1}, {"_id": 4}, {"_id": 7}]
    assert coll.count_documents({"n": 1}) == 3
    assert coll.count_documents({}, skip=2, limit=5) == 5
    assert coll.estimated_document_count() == 10
    assert sorted(coll.distinct("n")) == [0, 1, 2]
    assert sorted(coll.distinct("s", {"n": 0})) == ["x0", "x3", "x6", "x9"]
    assert sorted(coll.find({"n": 2}).distinct("_id")) == [2, 5, 8]

    after = coll.find_one_and_update({"n": 2}, {"$inc": {"n": 10}}, sort=[("_id", DESCENDING)],
                                     return_document=ReturnDocument.AFTER)
    assert after == {"_id": 8, "n": 12, "s": "x8", "sku": 8}, after
    before = coll.find_one_and_replace({"_id": 7}, {"r": 1}, projection={"s": 1})
    assert before == {"_id": 7, "s": "x7"}, before
    assert coll.find_one({"_id": 7}) == {"_id": 7, "r": 1}
    assert coll.find_one_and_delete({"n": 0}, sort=[("_id", ASCENDING)])["_id"] == 0
    up = coll.find_one_and_update({"_id": 99}, {"$set": {"u": 1}}, upsert=True,
                                  return_document=ReturnDocument.AFTER)
    assert up == {"_id": 99, "u": 1}, up
    assert coll.find_one_and_update({"_id": 1000}, {"$set": {"u": 1}}) is None

    # Regular expressions: $regex with $options, a compiled pattern, in listCollections too.
    coll.insert_many([{"_id": 100, "name": "Apple"}, {"_id": 101, "name": ["x", "apricot"]},
                      {"_id": 102, "name": "line1\nApple2"}, {"_id": 103, "name": "banana"}])
    ids = lambda f: sorted(d["_id"] for d in coll.find(f, {"_id": 1}))
    assert ids({"name": {"$regex": "^ap"}}) == [101]
    assert ids({"name": {"$regex": "^ap", "$options": "i"}}) == [100, 101]
    assert ids({"name": re.compile("^apple", re.IGNORECASE)}) == [100]
    assert ids({"name": Regex("^Apple", "m")}) == [100, 102]
    assert ids({"name": {"$regex": "1.A", "$options": "s"}}) == [102]
    assert [c["name"] for c in db.list_collections(filter={"name": {"$regex": "^it"}})] == \
        ["items"]
    try:
        coll.find_one({"name": {"$regex": "(?<=a)b"}})
        raise AssertionError("an invalid regex was accepted")
    except OperationFailure as e:
        assert e.code == 51091, e
    coll.delete_many({"_id": {"$gte": 100}})

    # Array and type operators: $size, $all, $elemMatch, $not, $type.
    ops = db.operators
    ops.insert_many([{"_id": 1, "t": ["a", "b"], "s": [80, 90], "v": 1},
                     {"_id": 2, "t": ["a"], "s": [70], "v": "x"},
                     {"_id": 3, "items": [{"k": 1, "q": 5}, {"k": 2, "q": 1}], "v": 2.5},
                     {"_id": 4, "v": None}])
    found = lambda f: sorted(d["_id"] for d in ops.find(f, {"_id": 1}))
    assert found({"t": {"$size": 2}}) == [1]
    assert found({"t": {"$all": ["a", "b"]}}) == [1]
    assert found({"s": {"$elemMatch": {"$gte": 75, "$lt": 85}}}) == [1]
    assert found({"items": {"$elemMatch": {"k": 2, "q": {"$lt": 3}}}}) == [3]
    assert found({"v": {"$not": {"$gt": 1}}}) == [1, 2, 4]
    assert found({"v": {"$not": re.compile("^x")}}) == [1, 3, 4]
    assert found({"v": {"$type": "number"}}) == [1, 3]
    assert found({"v": {"$type": ["string", "null"]}}) == [2, 4]
    assert found({"t": {"$type": "array"}}) == [1, 2]
    ops.drop()

    # Aggregation stages beyond $match/$sort/$group: $unwind, $addFields, $unset, $replaceWith.
    agg = db.agg
    agg.insert_many([{"_id": 1, "tags": ["a", "b"], "n": 1}, {"_id": 2, "tags": [], "n": 2},
                     {"_id": 3, "n": 3}, {"_id": 4, "tags": "solo"}])
    unwound = list(agg.aggregate([{"$unwind": "$tags"}]))
    assert [(d["_id"], d["tags"]) for d in unwound] == [(1, "a"), (1, "b"), (4, "solo")], unwound
    kept = list(agg.aggregate([{"$unwind": {"path": "$tags", "includeArrayIndex": "i",
                                            "preserveNullAndEmptyArrays": True}}]))
    assert [(d["_id"], d.get("tags"), d["i"]) for d in kept] == \
        [(1, "a", 0), (1, "b", 1), (2, None, None), (3, None, None), (4, "solo", None)], kept
    shaped = list(agg.aggregate([{"$addFields": {"m": "$n"}}, {"$unset": "tags"},
                                 {"$match": {"m": {"$gte": 2}}},
                                 {"$replaceWith": {"_id": "$_id", "m": "$m"}}]))
    assert shaped == [{"_id": 2, "m": 2}, {"_id": 3, "m": 3}], shaped
    agg.drop()

    coll.drop_index("n_1")
    assert [i["name"] for i in coll.list_indexes()] == ["_id_", "by_sku"]
    coll.drop_indexes()
    assert [i["name"] for i in coll.list_indexes()] == ["_id_"]
    return "indexes, list_collections/list_databases, find, counts, distinct, find_one_and_*"


def main(uri):
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        db = client["pyextras_%d" % os.getpid()]
        done = [watch(db), stages(db), helpers(client, db)]
        print("OK pymongo %s extras: %s" % (pymongo.version, "; ".join(done)))
    finally:
        client.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: extras.py <mongodb uri>", file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1])
    except Exception:  # any failure, assertion or driver error, fails the run
        print("FAIL pymongo %s extras:" % pymongo.version, file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
