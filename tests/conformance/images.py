"""Debian's pymongo 3.11 judges mongosim's post-images and $changeStreamSplitLargeEvent.

pymongo 3.11 predates fullDocumentBeforeChange and showExpandedEvents (its watch() has no such
parameters), so this covers what it can send: create/collMod with changeStreamPreAndPostImages,
watch(full_document="whenAvailable" | "required") returning the post-image of each change (and
OperationFailure 47 for "required" where no image exists), an event over 16 MiB failing with
BSONObjectTooLarge (10334) and arriving as fragments with the split stage.

    /usr/bin/python3 images.py 'mongodb://127.0.0.1:PORT/?replicaSet=rs0'

Exit status 0 and a last line "OK ..." on success.
"""

import os
import sys

import pymongo
from pymongo.errors import OperationFailure

MiB = 1024 * 1024


def expect_failure(stream, code, what):
    try:
        event = stream.next()
    except OperationFailure as e:
        assert e.code == code, "%s: %r" % (what, e.details)
        stream.close()
        return e
    raise AssertionError("%s: expected error %d, got %r" % (what, code, event))


def main(uri):
    client = pymongo.MongoClient(uri)
    db = client["pyimages_%d" % os.getpid()]

    db.create_collection("orders", changeStreamPreAndPostImages={"enabled": True})
    info = next(db.list_collections(filter={"name": "orders"}))
    assert info["options"] == {"changeStreamPreAndPostImages": {"enabled": True}}, info
    orders = db["orders"]

    available = orders.watch(full_document="whenAvailable")
    required = orders.watch(full_document="required")
    lookup = orders.watch(full_document="updateLookup")
    for s in (available, required, lookup):
        assert s.try_next() is None
    orders.insert_one({"_id": 1, "n": 1})
    orders.update_one({"_id": 1}, {"$set": {"n": 2}})
    orders.update_one({"_id": 1}, {"$set": {"n": 3}})
    for s in (available, required):
        assert s.next()["operationType"] == "insert"
        first, second = s.next(), s.next()
        assert first["fullDocument"] == {"_id": 1, "n": 2}, first
        assert second["fullDocument"] == {"_id": 1, "n": 3}, second
        assert "fullDocumentBeforeChange" not in first, first
    lookup.next()
    current = lookup.next()
    assert current["fullDocument"] == {"_id": 1, "n": 3}, current  # the current document

    # Without images: whenAvailable gives null, required fails with NoMatchingDocument.
    plain = db["plain"]
    plain.insert_one({"_id": 1})
    available = plain.watch(full_document="whenAvailable")
    required = plain.watch(full_document="required")
    for s in (available, required):
        assert s.try_next() is None
    plain.update_one({"_id": 1}, {"$set": {"n": 1}})
    event = available.next()
    assert event["fullDocument"] is None, event
    err = expect_failure(required, 47, "required post-image")
    assert "post-image was not found" in str(err), err

    # collMod turns images on.
    db.command("collMod", "plain", changeStreamPreAndPostImages={"enabled": True})
    info = next(db.list_collections(filter={"name": "plain"}))
    assert info["options"]["changeStreamPreAndPostImages"] == {"enabled": True}, info
    plain.update_one({"_id": 1}, {"$set": {"n": 2}})
    assert available.next()["fullDocument"] == {"_id": 1, "n": 2}
    available.close()

    # An update whose updateDescription and post-image together exceed 16 MiB.
    big = db["big"]
    big.insert_one({"_id": "x", "a": "a" * (9 * MiB)})
    unsplit = big.watch(full_document="whenAvailable")
    split = big.watch([{"$changeStreamSplitLargeEvent": {}}], full_document="required")
    for s in (unsplit, split):
        assert s.try_next() is None
    db.command("collMod", "big", changeStreamPreAndPostImages={"enabled": True})
    big.update_one({"_id": "x"}, {"$set": {"a": "b" * (9 * MiB)}})
    expect_failure(unsplit, 10334, "an event over 16 MiB without the split stage")
    f1, f2 = split.next(), split.next()
    assert f1["splitEvent"] == {"fragment": 1, "of": 2}, f1["splitEvent"]
    assert f2["splitEvent"] == {"fragment": 2, "of": 2}, f2["splitEvent"]
    assert f1["operationType"] == "update" and f1["documentKey"] == {"_id": "x"}
    whole = dict(f1)
    whole.update(f2)
    assert whole["fullDocument"]["a"] == "b" * (9 * MiB)
    assert whole["updateDescription"]["updatedFields"]["a"] == "b" * (9 * MiB)
    # pymongo caches the last fragment's token; resuming from the first gives the second.
    resumed = big.watch([{"$changeStreamSplitLargeEvent": {}}], full_document="required",
                        resume_after=f1["_id"])
    again = resumed.next()
    assert again["_id"] == f2["_id"] and again["splitEvent"] == {"fragment": 2, "of": 2}
    assert split.resume_token == f2["_id"], split.resume_token
    split.close()
    resumed.close()

    client.close()
    print("OK pymongo %s: post-images, required images and split events" % pymongo.version)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: images.py <mongodb uri>", file=sys.stderr)
        sys.exit(2)
    main(sys.argv[1])
