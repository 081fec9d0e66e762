'use strict';
// A real Node.js MongoDB driver against mongosim: writes to two collections, watches them at
// collection and database level, checks every event and its fields in order, then resumes
// from a saved token and checks it sees exactly the rest. Works with the npm driver 7.x (run
// with NODE_PATH=<this dir>/node/node_modules) and Debian's node-mongodb 3.6
// (NODE_PATH=/usr/share/nodejs). The script lives outside node/ so that NODE_PATH decides.
//   node change_stream.js 'mongodb://127.0.0.1:PORT/?replicaSet=rs0' [expected driver major]
// Exit status 0 and a last line "OK ..." on success; 1 with the first mismatch otherwise.

const assert = require('assert');
const mongodb = require('mongodb');
const driverPackage = require('mongodb/package.json');
const driverVersion = driverPackage.version;
const major = parseInt(driverVersion, 10);

const uri = process.argv[2];
if (!uri) {
  console.error('usage: node change_stream.js <mongodb uri> [expected driver major]');
  process.exit(2);
}
// A too-old Node fails in obscure ways inside the driver (Debian 12's own Node is 18, the
// npm driver 7.x needs 20.19+): say so plainly instead.
const floor = /^>=\s*(\d+)\.(\d+)/.exec((driverPackage.engines || {}).node || '');
if (floor) {
  const [maj, min] = process.versions.node.split('.').map(Number);
  if (maj < +floor[1] || (maj === +floor[1] && min < +floor[2])) {
    console.error(`FAIL: mongodb ${driverVersion} needs Node ${driverPackage.engines.node}, ` +
                  `this is ${process.versions.node}`);
    process.exit(1);
  }
}
if (process.argv[3] && parseInt(process.argv[3], 10) !== major) {
  console.error(`FAIL: expected mongodb driver ${process.argv[3]}.x, loaded ${driverVersion}`);
  process.exit(1);
}

function isTimestamp(v) {
  return v !== null && typeof v === 'object' && v._bsontype === 'Timestamp';
}

// The fields of a change event that do not depend on timing, for comparing two passes.
function shape(e) {
  return JSON.stringify({
    op: e.operationType,
    ns: e.ns,
    key: e.documentKey,
    doc: e.fullDocument,
    upd: e.updateDescription && {
      updatedFields: e.updateDescription.updatedFields,
      removedFields: e.updateDescription.removedFields,
    },
  });
}

function checkEvent(e, want, where) {
  const ctx = `${where}: ${JSON.stringify(e)}`;
  assert.ok(e._id && typeof e._id._data === 'string' && /^[0-9A-F]+$/i.test(e._id._data),
            `resume token {_data: hex} ${ctx}`);
  assert.strictEqual(e.operationType, want.op, ctx);
  assert.deepStrictEqual(e.ns, {db: want.db, coll: want.coll}, ctx);
  assert.deepStrictEqual(e.documentKey, {_id: want.id}, ctx);
  assert.ok(isTimestamp(e.clusterTime), `clusterTime is a Timestamp ${ctx}`);
  assert.ok(e.wallTime instanceof Date, `wallTime is a date ${ctx}`);
  if (want.op === 'insert') {
    assert.deepStrictEqual(e.fullDocument, want.doc, ctx);
  } else {
    assert.strictEqual(e.fullDocument, undefined, ctx);
  }
  if (want.op === 'update') {
    assert.deepStrictEqual(e.updateDescription.updatedFields, want.updated, ctx);
    assert.deepStrictEqual(e.updateDescription.removedFields, want.removed, ctx);
  } else {
    assert.strictEqual(e.updateDescription, undefined, ctx);
  }
}

async function readEvents(stream, n) {
  const out = [];
  for (let i = 0; i < n; ++i)
    out.push(await stream.next());
  return out;
}

async function main() {
  const options = major < 4 ? {useUnifiedTopology: true, useNewUrlParser: true} : {};
  const client = await mongodb.MongoClient.connect(uri, options);
  try {
    const dbName = `node${major}_${process.pid}`;
    const db = client.db(dbName);
    const alpha = db.collection('alpha');
    const beta = db.collection('beta');

    // Both drivers open change streams lazily; starting at the current operation time makes
    // the streams see every write below whenever their aggregate actually reaches the server.
    const ping = await db.command({ping: 1});
    assert.ok(isTimestamp(ping.operationTime), `ping has operationTime: ${JSON.stringify(ping)}`);
    const start = {startAtOperationTime: ping.operationTime};
    const collStream = alpha.watch([], start);
    const dbStream = db.watch([], start);

    await alpha.insertOne({_id: 1, name: 'one', tags: ['a', 'b']});
    await beta.insertOne({_id: 1, name: 'beta one'});
    await alpha.insertMany([{_id: 2, name: 'two', n: 1}, {_id: 3, name: 'three'}]);
    await alpha.updateOne({_id: 2}, {$set: {n: 2}, $unset: {name: ''}});
    await beta.deleteOne({_id: 1});
    await beta.insertOne({_id: 2, name: 'beta two'});

    const A = (id, doc) => ({op: 'insert', db: dbName, coll: 'alpha', id, doc});
    const expectedDb = [
      A(1, {_id: 1, name: 'one', tags: ['a', 'b']}),
      {op: 'insert', db: dbName, coll: 'beta', id: 1, doc: {_id: 1, name: 'beta one'}},
      A(2, {_id: 2, name: 'two', n: 1}),
      A(3, {_id: 3, name: 'three'}),
      {op: 'update', db: dbName, coll: 'alpha', id: 2, updated: {n: 2}, removed: ['name']},
      {op: 'delete', db: dbName, coll: 'beta', id: 1},
      {op: 'insert', db: dbName, coll: 'beta', id: 2, doc: {_id: 2, name: 'beta two'}},
    ];
    const expectedColl = expectedDb.filter((w) => w.coll === 'alpha');

    const dbEvents = await readEvents(dbStream, expectedDb.length);
    dbEvents.forEach((e, i) => checkEvent(e, expectedDb[i], `database event ${i}`));
    const collEvents = await readEvents(collStream, expectedColl.length);
    collEvents.forEach((e, i) => checkEvent(e, expectedColl[i], `collection event ${i}`));
    // The same write is the same event, with the same token, at both levels.
    collEvents.forEach((e, i) => {
      const same = dbEvents.find((d) => d._id._data === e._id._data);
      assert.ok(same, `collection event ${i} has the database stream's token`);
      assert.strictEqual(shape(same), shape(e));
    });
    // Tokens are strictly increasing.
    for (let i = 1; i < dbEvents.length; ++i)
      assert.ok(dbEvents[i - 1]._id._data < dbEvents[i]._id._data, `token order at ${i}`);
    await collStream.close();
    await dbStream.close();

    // Resume after the third database event and after the second collection event: exactly
    // the rest follows, then a write made after the resume (nothing skipped, nothing repeated).
    const cut = 3;
    const savedDb = dbEvents[cut - 1]._id;
    const savedColl = collEvents[1]._id;
    const resumedDb = db.watch([], {resumeAfter: savedDb});
    const resumedColl = alpha.watch([], {resumeAfter: savedColl});
    const restDb = await readEvents(resumedDb, expectedDb.length - cut);
    restDb.forEach((e, i) => {
      checkEvent(e, expectedDb[cut + i], `resumed database event ${i}`);
      assert.strictEqual(e._id._data, dbEvents[cut + i]._id._data, `same token after resume`);
    });
    const restColl = await readEvents(resumedColl, expectedColl.length - 2);
    restColl.forEach((e, i) => checkEvent(e, expectedColl[2 + i], `resumed collection event ${i}`));

    await alpha.insertOne({_id: 'sentinel'});
    const [lastDb] = await readEvents(resumedDb, 1);
    checkEvent(lastDb, A('sentinel', {_id: 'sentinel'}), 'database event after resume');
    const [lastColl] = await readEvents(resumedColl, 1);
    checkEvent(lastColl, A('sentinel', {_id: 'sentinel'}), 'collection event after resume');
    await resumedDb.close();
    await resumedColl.close();

    console.log(`OK node mongodb ${driverVersion}: ${dbEvents.length + collEvents.length} ` +
                `events watched, ${restDb.length + restColl.length + 2} after resume`);
  } finally {
    await client.close();
  }
}

main().catch((err) => {
  console.error(`FAIL node mongodb ${driverVersion}:`, err && err.stack ? err.stack : err);
  process.exit(1);
});
