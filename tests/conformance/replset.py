"""pymongo 3.11 (Debian's python3-pymongo) against a 3-member mongosim replica set whose primary
steps down every few hundred milliseconds (mongosim --replset 3 --step-down-every MS):
discovers the set from one seed, inserts with retryable writes while the primary moves,
forces one more step-down with replSetStepDown, and reads its change stream, which must
resume across every step-down and deliver each insert exactly once, in order.

    /usr/bin/python3 replset.py 'mongodb://127.0.0.1:PORT/?replicaSet=rs0'

Exit status 0 and a last line "replset ok ..." on success; 1 with the first mismatch otherwise.
"""

import os
import sys
import time
import traceback

import pymongo
from pymongo.errors import AutoReconnect, OperationFailure

COUNT = 300


def main(uri):
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=10000, retryWrites=True,
                                 heartbeatFrequencyMS=500)
    try:
        coll = client["replset_%d" % os.getpid()].orders
        coll.insert_one({"_id": -1})
        stream = coll.watch(max_await_time_ms=200)
        primaries = set()
        for i in range(COUNT):
            # Retryable writes: a NotWritablePrimary (labelled RetryableWriteError) from the
            # old primary is retried once on the new primary.
            coll.insert_one({"_id": i, "n": i})
            if client.primary is not None:
                primaries.add(client.primary)
            if i == COUNT // 2:
                try:
                    client.admin.command("replSetStepDown", 10)
                except (AutoReconnect, OperationFailure) as e:
                    # The chaos timer may have moved the primary between selection and the
                    # command: the old primary refuses or has just closed the connection.
                    print("replSetStepDown raced a step-down: %s" % e)
            time.sleep(0.01)
        assert len(primaries) >= 2, "the primary never moved: %r" % primaries
        assert coll.count_documents({}) == COUNT + 1, "a write was lost or doubled"

        seen, tokens = [], []
        while len(seen) < COUNT:
            e = stream.next()
            assert e["operationType"] == "insert", e
            seen.append(e["documentKey"]["_id"])
            tokens.append(e["_id"]["_data"])
        assert seen == list(range(COUNT)), "events out of order, lost or repeated: %r" % seen
        assert len(set(tokens)) == COUNT, "duplicate resume tokens"
        assert tokens == sorted(tokens), "resume tokens not ordered"
        stream.close()
        print("replset ok: %d events across %d primaries" % (COUNT, len(primaries)))
        return 0
    finally:
        client.close()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1]))
    except Exception:
        traceback.print_exc()
        sys.exit(1)
