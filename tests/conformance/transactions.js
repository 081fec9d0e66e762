'use strict';
// The npm MongoDB driver 7.x judges mongosim's multi-document transactions the way a MongoDB
// 7.0 replica set runs them:
//  - session.withTransaction committing three writes over two collections: a db.watch()
//    sees nothing before the commit, then the three events in operation order, with one
//    clusterTime, the session's lsid {id, uid} and one txnNumber (a Long), and tokens in order;
//  - reads inside the transaction see its writes, reads outside do not;
//  - an aborted transaction: no event, the data as before;
//  - the driver's retry of commitTransaction (a closed connection, then a retryable error
//    code, then an explicit second commit) answers ok and commits exactly once;
//  - withTransaction retrying the whole transaction after a TransientTransactionError.
//   NODE_PATH=<this dir>/node/node_modules node transactions.js 'mongodb://127.0.0.1:PORT/?replicaSet=rs0'
// Exit status 0 and a last line "OK ..." on success; 1 with the first mismatch otherwise.

const assert = require('assert');
const mongodb = require('mongodb');
const driverVersion = require('mongodb/package.json').version;

const uri = process.argv[2];
if (!uri) {
  console.error('usage: node transactions.js <mongodb uri>');
  process.exit(2);
}

function hex(bin) {
  return Buffer.from(bin.buffer).toString('hex');
}

async function next(stream, what) {
  const e = await stream.next();
  assert.ok(e, `an event for ${what}`);
  return e;
}

// The three events of one committed transaction: same clusterTime, lsid and txnNumber.
function checkTransactionEvents(events, session, what) {
  const lsid = hex(session.id.id);
  for (const e of events) {
    assert.ok(e.clusterTime.equals(events[0].clusterTime), `${what}: one clusterTime`);
    assert.ok(e.lsid, `${what}: lsid on ${JSON.stringify(e)}`);
    assert.strictEqual(hex(e.lsid.id), lsid, `${what}: the session's lsid.id`);
    assert.strictEqual(e.lsid.id.sub_type, 4, `${what}: lsid.id is a UUID`);
    assert.strictEqual(e.lsid.uid.buffer.length, 32, `${what}: lsid.uid is a SHA-256`);
    assert.ok(e.txnNumber !== undefined, `${what}: txnNumber`);
    assert.strictEqual(Number(e.txnNumber), Number(events[0].txnNumber), `${what}: one txnNumber`);
  }
  for (let k = 1; k < events.length; ++k)
    assert.ok(events[k - 1]._id._data < events[k]._id._data, `${what}: tokens in order`);
}

async function failPoint(client, mode, data) {
  await client.db('admin').command({configureFailPoint: 'failCommand', mode, data});
}

async function main() {
  const client = await mongodb.MongoClient.connect(uri, {promoteLongs: false, monitorCommands: true});
  try {
    const db = client.db(`txn_${process.pid}`);
    const orders = db.collection('orders');
    const stock = db.collection('stock');
    await stock.insertOne({_id: 'widget', qty: 10});
    const stream = db.watch();
    await stream.tryNext();  // the stream is open from here on
    assert.strictEqual(await stream.tryNext(), null, 'no event yet');

    // 1. withTransaction: three writes over two collections.
    const session = client.startSession();
    let attempts = 0;
    await session.withTransaction(async () => {
      ++attempts;
      await orders.insertOne({_id: 1, item: 'widget', qty: 2}, {session});
      await stock.updateOne({_id: 'widget'}, {$inc: {qty: -2}}, {session});
      await orders.insertOne({_id: 2, item: 'widget', qty: 1}, {session});
      assert.strictEqual((await stock.findOne({_id: 'widget'}, {session})).qty, 8,
                         'the transaction reads its own write');
      assert.strictEqual((await stock.findOne({_id: 'widget'})).qty, 10,
                         'others do not see it before the commit');
      assert.strictEqual(await orders.countDocuments({}, {session}), 2);
      assert.strictEqual(await stream.tryNext(), null, 'no event before the commit');
    });
    assert.strictEqual(attempts, 1);
    const committed = [await next(stream, 'insert 1'), await next(stream, 'update'),
                       await next(stream, 'insert 2')];
    assert.deepStrictEqual(committed.map((e) => e.operationType), ['insert', 'update', 'insert']);
    assert.deepStrictEqual(committed.map((e) => e.ns.coll), ['orders', 'stock', 'orders']);
    assert.deepStrictEqual(committed[1].updateDescription.updatedFields, {qty: 8});
    checkTransactionEvents(committed, session, 'withTransaction');
    assert.ok(committed[0].txnNumber instanceof mongodb.Long, 'txnNumber is a NumberLong');
    assert.strictEqual((await stock.findOne({_id: 'widget'})).qty, 8);

    // 2. An aborted transaction is never seen and changes nothing.
    session.startTransaction();
    await orders.insertOne({_id: 3}, {session});
    await stock.deleteOne({_id: 'widget'}, {session});
    assert.strictEqual(await stock.findOne({_id: 'widget'}, {session}), null);
    await session.abortTransaction();
    assert.strictEqual((await stock.findOne({_id: 'widget'})).qty, 8, 'abort restores');
    assert.strictEqual(await orders.findOne({_id: 3}), null, 'abort restores');
    await orders.insertOne({_id: 'marker-1'});
    const afterAbort = await next(stream, 'marker after abort');
    assert.deepStrictEqual(afterAbort.documentKey, {_id: 'marker-1'}, 'no event of the abort');
    assert.strictEqual(afterAbort.lsid, undefined, 'a plain write has no lsid');

    // 3. The driver retries commitTransaction: after a closed connection, after a retryable
    // error; and a second explicit commit is answered ok (the commit is idempotent).
    let commits = 0;
    client.on('commandStarted', (ev) => {
      if (ev.commandName === 'commitTransaction')
        ++commits;
    });
    for (const [what, data] of [
      ['closed connection', {failCommands: ['commitTransaction'], closeConnection: true}],
      ['ShutdownInProgress', {failCommands: ['commitTransaction'], errorCode: 91}],
    ]) {
      commits = 0;
      session.startTransaction();
      await orders.insertOne({_id: `retry-${what}`}, {session});
      await failPoint(client, {times: 1}, data);
      await session.commitTransaction();
      assert.strictEqual(commits, 2, `${what}: the driver retried the commit once`);
      const e = await next(stream, `commit retried after ${what}`);
      assert.deepStrictEqual(e.documentKey, {_id: `retry-${what}`});
      checkTransactionEvents([e], session, what);
    }
    commits = 0;
    await session.commitTransaction();  // again: the driver sends it again, mongod says ok
    assert.strictEqual(commits, 1, 'the second commit reached the server');
    await orders.insertOne({_id: 'marker-2'});
    assert.deepStrictEqual((await next(stream, 'marker after retries')).documentKey,
                           {_id: 'marker-2'}, 'the transaction was committed exactly once');
    assert.strictEqual(
        await orders.countDocuments({_id: {$in: ['retry-closed connection', 'retry-ShutdownInProgress']}}),
        2);

    // 4. withTransaction starts over after a TransientTransactionError (a write conflict).
    await failPoint(client, {times: 1}, {failCommands: ['insert'], errorCode: 112});
    attempts = 0;
    await session.withTransaction(async () => {
      ++attempts;
      await orders.insertOne({_id: 'conflicted'}, {session});
    });
    assert.strictEqual(attempts, 2, 'withTransaction retried after WriteConflict');
    const retried = await next(stream, 'the retried transaction');
    assert.deepStrictEqual(retried.documentKey, {_id: 'conflicted'});
    checkTransactionEvents([retried], session, 'retried transaction');
    assert.ok(Number(retried.txnNumber) > Number(committed[0].txnNumber));

    await session.endSession();
    await stream.close();
    console.log(`OK node mongodb ${driverVersion}: transactions`);
  } finally {
    await client.close();
  }
}

main().catch((err) => {
  console.error(`FAIL node mongodb ${driverVersion}:`, err && err.stack ? err.stack : err);
  process.exit(1);
});
