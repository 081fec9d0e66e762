'use strict';
// The npm mongodb 7.x driver (NODE_PATH=<this dir>/node/node_modules) against mongosim in the
// scenarios of issue #3 that change_stream.js does not cover, each asserting what a real
// replica set gives the driver:
//   resumable    - failCommand on getMore labelled ResumableChangeStreamError: the driver
//                  resumes by itself, no event lost or repeated; without the label the error
//                  reaches the application.
//   start_after  - startAfter the invalidate token of a dropped collection: the stream goes on
//                  with the events of the recreated collection.
//   node conformance.js 'mongodb://127.0.0.1:PORT/?replicaSet=rs0' <scenario>
// Exit status 0 and a last line "OK ..." on success; 1 with the first mismatch otherwise.

const assert = require('assert');
const mongodb = require('mongodb');
const driverVersion = require('mongodb/package.json').version;

const [uri, scenario] = process.argv.slice(2);
if (!uri || !scenario) {
  console.error('usage: node conformance.js <mongodb uri> resumable|start_after');
  process.exit(2);
}

function isTimestamp(v) {
  return v !== null && typeof v === 'object' && v._bsontype === 'Timestamp';
}

async function startTime(db) {
  const ping = await db.command({ping: 1});
  assert.ok(isTimestamp(ping.operationTime), `ping has operationTime: ${JSON.stringify(ping)}`);
  return ping.operationTime;
}

async function failGetMore(client, labels) {
  const data = {failCommands: ['getMore'], errorCode: 280};
  if (labels)
    data.errorLabels = labels;
  await client.db('admin').command({configureFailPoint: 'failCommand', mode: {times: 1}, data});
}

async function resumable(client, db) {
  const coll = db.collection('resume');
  let aggregates = 0;
  let failedGetMores = 0;
  client.on('commandStarted', (ev) => {
    if (ev.commandName === 'aggregate')
      ++aggregates;
  });
  client.on('commandFailed', (ev) => {
    if (ev.commandName === 'getMore')
      ++failedGetMores;
  });
  const stream = coll.watch([], {startAtOperationTime: await startTime(db)});
  try {
    await coll.insertOne({_id: 1});
    const first = await stream.next();
    assert.ok(first && first.documentKey._id === 1, `first event: ${JSON.stringify(first)}`);
    assert.strictEqual(aggregates, 1);

    // Labelled: the driver resumes after the last token it saw, transparently.
    await failGetMore(client, ['ResumableChangeStreamError']);
    await coll.insertOne({_id: 2});
    await coll.insertOne({_id: 3});
    const ids = [];
    for (let i = 0; i < 2; ++i) {
      const e = await stream.next();
      ids.push(e.documentKey._id);
    }
    assert.deepStrictEqual(ids, [2, 3], 'no event lost or repeated across the resume');
    assert.strictEqual(failedGetMores, 1, 'the fail point fired once');
    assert.strictEqual(aggregates, 2, 'the driver resumed with a new aggregate');

    // Unlabelled: the same error reaches the application.
    await failGetMore(client, null);
    await coll.insertOne({_id: 4});
    let surfaced = null;
    try {
      await stream.next();
    } catch (err) {
      surfaced = err;
    }
    assert.ok(surfaced, 'the unlabelled error did not surface');
    assert.strictEqual(surfaced.code, 280, String(surfaced));
    assert.ok(!surfaced.hasErrorLabel('ResumableChangeStreamError'), String(surfaced));
    assert.strictEqual(aggregates, 2, 'no resume without the label');
  } finally {
    await stream.close().catch(() => {});
  }
  return `resumed once (${aggregates} aggregates), unlabelled error surfaced`;
}

async function startAfter(client, db) {
  const coll = db.collection('phoenix');
  const stream = coll.watch([], {startAtOperationTime: await startTime(db)});
  await coll.insertOne({_id: 1});
  const inserted = await stream.next();
  assert.deepStrictEqual(inserted.documentKey, {_id: 1}, JSON.stringify(inserted));
  await coll.drop();
  const drop = await stream.next();
  assert.strictEqual(drop.operationType, 'drop', JSON.stringify(drop));
  assert.deepStrictEqual(drop.ns, {db: db.databaseName, coll: 'phoenix'});
  const invalidate = await stream.next();
  assert.strictEqual(invalidate.operationType, 'invalidate', JSON.stringify(invalidate));
  assert.ok(drop._id._data < invalidate._id._data, 'invalidate token after the drop token');
  await stream.close();

  // The collection comes back; writes before and after the new stream opens.
  await coll.insertOne({_id: 3, again: true});

  // resumeAfter cannot pass an invalidate (a real server refuses it)...
  const refused = coll.watch([], {resumeAfter: invalidate._id});
  let error = null;
  try {
    await refused.next();
  } catch (err) {
    error = err;
  }
  await refused.close().catch(() => {});
  assert.ok(error, 'resumeAfter an invalidate token was accepted');
  assert.strictEqual(error.code, 260, String(error));  // InvalidResumeToken

  // ...startAfter can: the stream continues with the recreated collection's events.
  const after = coll.watch([], {startAfter: invalidate._id});
  try {
    const e3 = await after.next();
    assert.strictEqual(e3.operationType, 'insert', JSON.stringify(e3));
    assert.deepStrictEqual(e3.fullDocument, {_id: 3, again: true});
    assert.ok(invalidate._id._data < e3._id._data, 'later token than the invalidate');
    await coll.insertOne({_id: 4});
    const e4 = await after.next();
    assert.deepStrictEqual(e4.documentKey, {_id: 4}, JSON.stringify(e4));
  } finally {
    await after.close();
  }
  return 'invalidate, resumeAfter refused, startAfter continued';
}

const scenarios = {resumable, start_after: startAfter};

async function main() {
  // The 7.x driver's resume selects a server with a serverSelectionTimeoutMS timer that keeps
  // Node alive after the client closes (30 s by default): keep it short.
  const client = await mongodb.MongoClient.connect(uri,
                                                   {monitorCommands: true,
                                                    serverSelectionTimeoutMS: 3000});
  try {
    const db = client.db(`conf_${scenario}_${process.pid}`);
    const summary = await scenarios[scenario](client, db);
    console.log(`OK node mongodb ${driverVersion} ${scenario}: ${summary}`);
  } finally {
    await client.close();
  }
}

if (!scenarios[scenario]) {
  console.error(`unknown scenario ${scenario}`);
  process.exit(2);
}
main().catch((err) => {
  console.error(`FAIL node mongodb ${driverVersion} ${scenario}:`, err && err.stack ? err.stack : err);
  process.exit(1);
});
