'use strict';
// The npm mongodb 7.x driver (NODE_PATH=<this dir>/node/node_modules) against mongosim in what a
// reviewer's own script does besides change_stream.js, each step asserting what a MongoDB 7.0
// replica set answers:
//   cursors      - changeStream.tryNext(), hasNext() with maxAwaitTimeMS (every awaitData
//                  getMore returns within it), `for await` over a change stream, updateLookup.
//   helpers      - createIndex/listIndexes/dropIndex, listCollections and listDatabases with a
//                  filter and nameOnly, find with sort/skip/limit/projection/batchSize,
//                  countDocuments, estimatedDocumentCount, distinct, findOneAndUpdate/Replace/
//                  Delete.
//   retry        - a writeConcernError labelled RetryableWriteError (failCommand): the driver
//                  retries with the same lsid and txnNumber and mongosim answers from its
//                  session table, so an insert, an $inc and a findOneAndUpdate apply once.
//   failpoints   - failCommand modes {skip: n} and {activationProbability: p}, and
//                  failGetMoreAfterCursorCheckout: resumable code -> the change stream resumes
//                  by itself; InternalError (no errorCode) -> the error reaches the application.
//   node extras.js 'mongodb://127.0.0.1:PORT/?replicaSet=rs0' cursors|helpers|retry|failpoints
// Exit status 0 and a last line "OK ..." on success; 1 with the first mismatch otherwise.

const assert = require('assert');
const mongodb = require('mongodb');
const driverVersion = require('mongodb/package.json').version;

const [uri, scenario] = process.argv.slice(2);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function startTime(db) {
  const ping = await db.command({ping: 1});
  assert.ok(ping.operationTime && ping.operationTime._bsontype === 'Timestamp', 'operationTime');
  return ping.operationTime;
}

async function cursors(client, db) {
  const coll = db.collection('cursors');
  const getMores = [];
  client.on('commandSucceeded', (ev) => {
    if (ev.commandName === 'getMore')
      getMores.push(ev.duration);
  });
  const maxAwaitTimeMS = 250;
  const stream = coll.watch([], {startAtOperationTime: await startTime(db), maxAwaitTimeMS,
                                 fullDocument: 'updateLookup'});
  try {
    // tryNext: nothing yet is null, not an error and not a hang.
    const before = Date.now();
    assert.strictEqual(await stream.tryNext(), null, 'tryNext on an empty stream');
    assert.ok(Date.now() - before < 5000, 'tryNext came back');

    await coll.insertOne({_id: 1, n: 1});
    let first = null;
    for (let i = 0; i < 20 && !first; ++i)
      first = await stream.tryNext();
    assert.ok(first, 'tryNext sees the insert');
    assert.strictEqual(first.operationType, 'insert');
    assert.deepStrictEqual(first.fullDocument, {_id: 1, n: 1});

    // hasNext waits across empty awaitData getMores until the write arrives.
    getMores.length = 0;
    const writer = sleep(4 * maxAwaitTimeMS).then(() => coll.updateOne({_id: 1}, {$inc: {n: 1}}));
    assert.strictEqual(await stream.hasNext(), true);
    await writer;
    const update = await stream.next();
    assert.strictEqual(update.operationType, 'update', JSON.stringify(update));
    assert.deepStrictEqual(update.updateDescription.updatedFields, {n: 2});
    assert.deepStrictEqual(update.fullDocument, {_id: 1, n: 2}, 'updateLookup');
    assert.ok(getMores.length >= 2, `empty getMores while waiting: ${getMores}`);
    for (const d of getMores)
      assert.ok(d < maxAwaitTimeMS + 1000, `a getMore took ${d} ms (maxAwaitTimeMS ${maxAwaitTimeMS})`);
    const waits = getMores.length;

    // for await: the async iterator of the same stream.
    await coll.insertMany([{_id: 2}, {_id: 3}, {_id: 4}]);
    await coll.deleteOne({_id: 2});
    const seen = [];
    for await (const change of stream) {
      seen.push(`${change.operationType}:${change.documentKey._id}`);
      if (seen.length === 4)
        break;
    }
    assert.deepStrictEqual(seen, ['insert:2', 'insert:3', 'insert:4', 'delete:2']);
    return `tryNext, hasNext over ${waits} awaitData getMores, for await`;
  } finally {
    await stream.close().catch(() => {});
  }
}

async function helpers(client, db) {
  const coll = db.collection('items');
  assert.strictEqual(await coll.createIndex({n: 1}), 'n_1');
  assert.strictEqual(await coll.createIndex({sku: 1}, {unique: true, name: 'by_sku'}), 'by_sku');
  const indexes = (await coll.listIndexes().toArray()).map((i) => i.name);
  assert.deepStrictEqual(indexes, ['_id_', 'n_1', 'by_sku']);
  assert.ok(await coll.indexExists('by_sku'));

  await coll.insertMany([...Array(10).keys()].map((i) => ({_id: i, n: i % 3, s: `x${i}`, sku: i,
                                                          tags: [`t${i % 2}`, 'all']})));
  await db.createCollection('other');
  const names = (await db.listCollections({}, {nameOnly: true}).toArray()).map((c) => c.name).sort();
  assert.deepStrictEqual(names, ['items', 'other']);
  const filtered = await db.listCollections({name: 'items'}).toArray();
  assert.strictEqual(filtered.length, 1);
  assert.strictEqual(filtered[0].type, 'collection');
  assert.ok(filtered[0].info && filtered[0].info.uuid, 'full listCollections has info.uuid');
  const dbs = await client.db('admin').admin().listDatabases({nameOnly: true,
                                                              filter: {name: db.databaseName}});
  assert.deepStrictEqual(dbs.databases.map((d) => d.name), [db.databaseName]);

  const page = await coll.find({n: {$gte: 1}}, {projection: {s: 1, _id: 0}})
                   .sort({_id: -1}).skip(1).limit(3).toArray();
  assert.deepStrictEqual(page, [{s: 'x7'}, {s: 'x5'}, {s: 'x4'}]);
  const batched = await coll.find({}).batchSize(3).toArray();
  assert.strictEqual(batched.length, 10, 'getMore over batches of 3');
  assert.strictEqual(await coll.countDocuments({n: 1}), 3);
  assert.strictEqual(await coll.countDocuments({}, {skip: 2, limit: 5}), 5);
  assert.strictEqual(await coll.estimatedDocumentCount(), 10);
  assert.deepStrictEqual((await coll.distinct('n')).sort(), [0, 1, 2]);
  assert.deepStrictEqual((await coll.distinct('s', {n: 0})).sort(), ['x0', 'x3', 'x6', 'x9']);
  assert.deepStrictEqual((await coll.distinct('tags')).sort(), ['all', 't0', 't1']);

  const after = await coll.findOneAndUpdate({n: 2}, {$inc: {n: 10}},
                                            {sort: {_id: -1}, returnDocument: 'after'});
  assert.deepStrictEqual(after, {_id: 8, n: 12, s: 'x8', sku: 8, tags: ['t0', 'all']});
  const replaced = await coll.findOneAndReplace({_id: 7}, {r: 1}, {projection: {s: 1}});
  assert.deepStrictEqual(replaced, {_id: 7, s: 'x7'}, 'the document before, projected');
  assert.deepStrictEqual(await coll.findOne({_id: 7}), {_id: 7, r: 1});
  const removed = await coll.findOneAndDelete({n: 0}, {sort: {_id: 1}});
  assert.strictEqual(removed._id, 0);
  const upserted = await coll.findOneAndUpdate({_id: 99}, {$set: {u: 1}},
                                               {upsert: true, returnDocument: 'after'});
  assert.deepStrictEqual(upserted, {_id: 99, u: 1});
  const none = await coll.findOneAndUpdate({_id: 1000}, {$set: {u: 1}});
  assert.strictEqual(none, null);
  const full = await coll.findOneAndUpdate({_id: 99}, {$set: {u: 2}}, {includeResultMetadata: true});
  assert.deepStrictEqual(full.lastErrorObject, {n: 1, updatedExisting: true});
  assert.deepStrictEqual(full.value, {_id: 99, u: 1});

  await coll.dropIndex('n_1');
  assert.deepStrictEqual((await coll.indexes()).map((i) => i.name), ['_id_', 'by_sku']);
  await coll.dropIndexes();
  assert.deepStrictEqual((await coll.indexes()).map((i) => i.name), ['_id_']);
  return 'indexes, listCollections/listDatabases, find, counts, distinct, findOneAnd*';
}

async function retry(client, db) {
  const coll = db.collection('retried');
  const started = [];
  client.on('commandStarted', (ev) => {
    if (['insert', 'update', 'findAndModify'].includes(ev.commandName))
      started.push(`${ev.commandName}#${ev.command.txnNumber}`);
  });
  const failOnce = (command) => client.db('admin').command({
    configureFailPoint: 'failCommand', mode: {times: 1},
    data: {failCommands: [command],
           writeConcernError: {code: 91, errmsg: 'Replication is being shut down'}}});
  const stream = coll.watch([], {startAtOperationTime: await startTime(db)});
  try {
    await failOnce('insert');
    await coll.insertOne({_id: 1, n: 0});
    await failOnce('update');
    const inc = await coll.updateOne({_id: 1}, {$inc: {n: 1}});
    assert.strictEqual(inc.modifiedCount, 1, 'the retry reports the first execution');
    await failOnce('findAndModify');
    const doc = await coll.findOneAndUpdate({_id: 1}, {$inc: {n: 1}}, {returnDocument: 'after'});
    assert.deepStrictEqual(doc, {_id: 1, n: 2}, 'the retry answers with the first result');

    // Each write went out twice with one txnNumber; each applied once.
    assert.strictEqual(started.length, 6, started.join(' '));
    for (let i = 0; i < 6; i += 2)
      assert.strictEqual(started[i], started[i + 1], 'the retry reuses the txnNumber');
    assert.deepStrictEqual(await coll.find().toArray(), [{_id: 1, n: 2}]);
    const ops = [];
    for (let i = 0; i < 3; ++i)
      ops.push((await stream.next()).operationType);
    assert.deepStrictEqual(ops, ['insert', 'update', 'update']);
    await coll.insertOne({_id: 'sentinel'});
    assert.deepStrictEqual((await stream.next()).documentKey, {_id: 'sentinel'},
                           'no event from a retry');
  } finally {
    await stream.close().catch(() => {});
  }
  return '3 writes sent twice with one txnNumber each, applied once';
}

async function failpoints(client, db) {
  const admin = client.db('admin');
  const configure = (name, mode, data) =>
    admin.command({configureFailPoint: name, mode, ...(data ? {data} : {})});
  const pingCode = async () => {
    try {
      await db.command({ping: 1});
      return 0;
    } catch (err) {
      return err.code;
    }
  };

  // {skip: 2}: two pings pass, then every one fails until the fail point is turned off.
  await configure('failCommand', {skip: 2}, {failCommands: ['ping'], errorCode: 2});
  const skipped = [];
  for (let i = 0; i < 4; ++i)
    skipped.push(await pingCode());
  await configure('failCommand', 'off');
  assert.deepStrictEqual(skipped, [0, 0, 2, 2], 'skip mode');
  assert.strictEqual(await pingCode(), 0, 'off');

  // {activationProbability: 0.5}: some fail, some pass.
  await configure('failCommand', {activationProbability: 0.5}, {failCommands: ['ping'], errorCode: 2});
  let failed = 0;
  for (let i = 0; i < 60; ++i)
    failed += (await pingCode()) === 2 ? 1 : 0;
  await configure('failCommand', 'off');
  assert.ok(failed > 5 && failed < 55, `${failed} of 60 pings failed at probability 0.5`);
  await assert.rejects(configure('failCommand', {activationProbability: 2}, {failCommands: ['ping'],
                                                                             errorCode: 2}),
                       (err) => err.code === 2);

  // failGetMoreAfterCursorCheckout on a change stream.
  const coll = db.collection('checkout');
  let aggregates = 0;
  client.on('commandStarted', (ev) => {
    if (ev.commandName === 'aggregate')
      ++aggregates;
  });
  const stream = coll.watch([], {startAtOperationTime: await startTime(db), maxAwaitTimeMS: 200});
  try {
    await coll.insertOne({_id: 1});
    assert.strictEqual((await stream.next()).documentKey._id, 1);
    await configure('failGetMoreAfterCursorCheckout', {times: 1}, {errorCode: 91});
    await coll.insertOne({_id: 2});
    assert.strictEqual((await stream.next()).documentKey._id, 2, 'resumed, nothing lost');
    assert.strictEqual(aggregates, 2, 'the driver resumed with a new aggregate');
    await configure('failGetMoreAfterCursorCheckout', {times: 1});
    await coll.insertOne({_id: 3});
    await assert.rejects(stream.next(), (err) => err.code === 1 && err.codeName === 'InternalError');
  } finally {
    await stream.close().catch(() => {});
  }
  return `skip, activationProbability (${failed}/60), failGetMoreAfterCursorCheckout`;
}

const scenarios = {cursors, helpers, retry, failpoints};

async function main() {
  const client = await mongodb.MongoClient.connect(uri, {monitorCommands: true,
                                                         serverSelectionTimeoutMS: 3000});
  try {
    const db = client.db(`extras_${scenario}_${process.pid}`);
    const summary = await scenarios[scenario](client, db);
    console.log(`OK node mongodb ${driverVersion} ${scenario}: ${summary}`);
  } finally {
    await client.close();
  }
}

if (!uri || !scenarios[scenario]) {
  console.error('usage: node extras.js <mongodb uri> cursors|helpers|retry|failpoints');
  process.exit(2);
}
main().catch((err) => {
  console.error(`FAIL node mongodb ${driverVersion} ${scenario}:`, err && err.stack ? err.stack : err);
  process.exit(1);
});
