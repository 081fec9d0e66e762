"""A real Python MongoDB driver (Debian's python3-pymongo 3.11) against mongosim: writes to two
collections, watches them at collection and database level, checks every event and its fields
in order, then resumes from a saved token and checks it sees exactly the rest.

    /usr/bin/python3 change_stream.py 'mongodb://127.0.0.1:PORT/?replicaSet=rs0'

Exit status 0 and a last line "OK ..." on success; 1 with the first mismatch otherwise.
"""

import datetime
import os
import re
import sys
import traceback

import pymongo
from bson.timestamp import Timestamp


def check_event(e, want, where):
    ctx = "%s: %r" % (where, e)
    token = e.get("_id", {}).get("_data")
    assert isinstance(token, str) and re.fullmatch(r"[0-9A-Fa-f]+", token), "token " + ctx
    assert e["operationType"] == want["op"], ctx
    assert e["ns"] == {"db": want["db"], "coll": want["coll"]}, ctx
    assert e["documentKey"] == {"_id": want["id"]}, ctx
    assert isinstance(e["clusterTime"], Timestamp), "clusterTime " + ctx
    assert isinstance(e["wallTime"], datetime.datetime), "wallTime " + ctx
    if want["op"] == "insert":
        assert e["fullDocument"] == want["doc"], ctx
    else:
        assert "fullDocument" not in e, ctx
    if want["op"] == "update":
        assert e["updateDescription"]["updatedFields"] == want["updated"], ctx
        assert e["updateDescription"]["removedFields"] == want["removed"], ctx
    else:
        assert "updateDescription" not in e, ctx


def read_events(stream, n):
    # next() blocks on awaitData getMores until an event arrives.
    return [stream.next() for _ in range(n)]


def main(uri):
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        db_name = "py%s_%d" % (pymongo.version_tuple[0], os.getpid())
        db = client[db_name]
        alpha, beta = db.alpha, db.beta

        # pymongo runs the aggregate in watch(), so the streams start before the writes.
        coll_stream = alpha.watch()
        db_stream = db.watch()

        alpha.insert_one({"_id": 1, "name": "one", "tags": ["a", "b"]})
        beta.insert_one({"_id": 1, "name": "beta one"})
        alpha.insert_many([{"_id": 2, "name": "two", "n": 1}, {"_id": 3, "name": "three"}])
        alpha.update_one({"_id": 2}, {"$set": {"n": 2}, "$unset": {"name": ""}})
        beta.delete_one({"_id": 1})
        beta.insert_one({"_id": 2, "name": "beta two"})

        def a(i, doc):
            return {"op": "insert", "db": db_name, "coll": "alpha", "id": i, "doc": doc}

        expected_db = [
            a(1, {"_id": 1, "name": "one", "tags": ["a", "b"]}),
            {"op": "insert", "db": db_name, "coll": "beta", "id": 1,
             "doc": {"_id": 1, "name": "beta one"}},
            a(2, {"_id": 2, "name": "two", "n": 1}),
            a(3, {"_id": 3, "name": "three"}),
            {"op": "update", "db": db_name, "coll": "alpha", "id": 2,
             "updated": {"n": 2}, "removed": ["name"]},
            {"op": "delete", "db": db_name, "coll": "beta", "id": 1},
            {"op": "insert", "db": db_name, "coll": "beta", "id": 2,
             "doc": {"_id": 2, "name": "beta two"}},
        ]
        expected_coll = [w for w in expected_db if w["coll"] == "alpha"]

        db_events = read_events(db_stream, len(expected_db))
        for i, e in enumerate(db_events):
            check_event(e, expected_db[i], "database event %d" % i)
        coll_events = read_events(coll_stream, len(expected_coll))
        for i, e in enumerate(coll_events):
            check_event(e, expected_coll[i], "collection event %d" % i)
        db_tokens = [e["_id"]["_data"] for e in db_events]
        for e in coll_events:
            assert e["_id"]["_data"] in db_tokens, "same event, same token at both levels"
        assert db_tokens == sorted(db_tokens) and len(set(db_tokens)) == len(db_tokens), \
            "tokens strictly increase"
        # The driver's own notion of the resume point is the last event's token.
        assert db_stream.resume_token == db_events[-1]["_id"], db_stream.resume_token
        coll_stream.close()
        db_stream.close()

        cut = 3
        resumed_db = db.watch(resume_after=db_events[cut - 1]["_id"])
        resumed_coll = alpha.watch(resume_after=coll_events[1]["_id"])
        rest_db = read_events(resumed_db, len(expected_db) - cut)
        for i, e in enumerate(rest_db):
            check_event(e, expected_db[cut + i], "resumed database event %d" % i)
            assert e["_id"] == db_events[cut + i]["_id"], "same token after resume"
        rest_coll = read_events(resumed_coll, len(expected_coll) - 2)
        for i, e in enumerate(rest_coll):
            check_event(e, expected_coll[2 + i], "resumed collection event %d" % i)

        alpha.insert_one({"_id": "sentinel"})
        check_event(resumed_db.next(), a("sentinel", {"_id": "sentinel"}), "after resume (db)")
        check_event(resumed_coll.next(), a("sentinel", {"_id": "sentinel"}),
                    "after resume (collection)")
        resumed_db.close()
        resumed_coll.close()
        print("OK pymongo %s: %d events watched, %d after resume"
              % (pymongo.version, len(db_events) + len(coll_events),
                 len(rest_db) + len(rest_coll) + 2))
    finally:
        client.close()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: change_stream.py <mongodb uri>", file=sys.stderr)
        sys.exit(2)
    try:
        main(sys.argv[1])
    except Exception:  # any failure, assertion or driver error, fails the run
        print("FAIL pymongo %s:" % pymongo.version, file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
