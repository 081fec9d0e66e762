'use strict';
// The npm mongodb 7.x driver (NODE_PATH=<this dir>/node/node_modules) against a 3-member
// mongosim replica set whose primary steps down every few hundred milliseconds
// (mongosim --replset 3 --step-down-every MS): discovers the set from one seed, inserts with
// retryable writes while the primary moves, forces one more step-down with replSetStepDown,
// and reads a change stream that must resume across every step-down and deliver each insert
// exactly once, in order. Beside each insert it $incs a counter (not idempotent): a retried
// write that were applied twice would show as a counter above the acknowledged increments,
// so the retries must be answered from the session table (same lsid and txnNumber). Now and
// then a failCommand writeConcernError (code 189, PrimarySteppedDown, as mongod answers a write
// it applied while stepping down) is armed on the primary so increments are retried for sure.
//   node replset.js 'mongodb://127.0.0.1:PORT/?replicaSet=rs0'
// Exit status 0 and a last line "replset ok ..." on success; 1 with the first mismatch.

const assert = require('assert');
const { MongoClient, MongoWriteConcernError } = require('mongodb');

const COUNT = 300;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
let step = 'connecting';  // what main() was doing, for the failure message

async function main(uri) {
  const client = new MongoClient(uri, {
    serverSelectionTimeoutMS: 10000,
    retryWrites: true,
    heartbeatFrequencyMS: 500,
    monitorCommands: true,
  });
  const primaries = new Set();
  client.on('serverDescriptionChanged', (ev) => {
    if (ev.newDescription.type === 'RSPrimary') primaries.add(ev.address);
  });
  // Write commands the driver sent, by lsid+txnNumber: a key seen twice is a retry.
  const attempts = new Map();
  client.on('commandStarted', (ev) => {
    if ((ev.commandName === 'insert' || ev.commandName === 'update') && ev.command.txnNumber) {
      const key = `${ev.command.lsid.id.toString('hex')}:${ev.command.txnNumber}`;
      attempts.set(key, (attempts.get(key) || 0) + 1);
    }
  });
  // At most one member has the fail point armed at a time, so a retry never meets a second one.
  let armed = false;
  let writeConcernErrors = 0;
  client.on('commandSucceeded', (ev) => {
    if (ev.commandName === 'update' && ev.reply && ev.reply.writeConcernError) {
      ++writeConcernErrors;
      armed = false;
    }
  });
  await client.connect();
  try {
    const coll = client.db(`replset_node_${process.pid}`).collection('orders');
    const counters = client.db(`replset_node_${process.pid}`).collection('counters');
    let acknowledgedInserts = 0;
    let acknowledgedIncs = 0;
    let appliedWithWriteConcernError = 0;
    step = 'first insert';
    await coll.insertOne({ _id: -1 });
    const stream = coll.watch([], { maxAwaitTimeMS: 200 });
    // The reader runs beside the writer, so a getMore is in flight at every step-down.
    const seen = [];
    const tokens = [];
    const reader = (async () => {
      while (seen.length < COUNT) {
        const e = await stream.next();
        assert.strictEqual(e.operationType, 'insert');
        seen.push(e.documentKey._id);
        tokens.push(e._id._data);
      }
    })();
    let readerError = null;
    reader.catch((e) => { readerError = e; });  // reported after the writes
    // The driver opens the cursor lazily: let it exist before the writes.
    await sleep(300);
    for (let i = 0; i < COUNT && !readerError; i++) {
      // Retryable writes: NotWritablePrimary (labelled RetryableWriteError) from the old
      // primary is retried once on the new primary.
      step = `insert ${i}`;
      await coll.insertOne({ _id: i, n: i });
      ++acknowledgedInserts;
      if (i % 20 === 10 && !armed) {
        step = `arming a writeConcernError before increment ${i}`;
        try {
          await client.db('admin').command({
            configureFailPoint: 'failCommand', mode: { times: 1 },
            data: { failCommands: ['update'],
                    writeConcernError: { code: 189, errmsg: 'primary stepped down' } } });
          armed = true;
        } catch (e) {
          console.log(`arming raced a step-down: ${e.message}`);
        }
      }
      step = `increment ${i}`;
      try {
        const inc = await counters.updateOne({ _id: 'c' }, { $inc: { n: 1 } }, { upsert: true });
        assert.strictEqual(inc.modifiedCount + inc.upsertedCount, 1, `increment ${i}`);
        ++acknowledgedIncs;
      } catch (e) {
        // The retry of a write that first met NotWritablePrimary reached the armed member:
        // applied there, then the writeConcernError (a driver retries only once).
        if (!(e instanceof MongoWriteConcernError) || e.code !== 189) throw e;
        ++appliedWithWriteConcernError;
      }
      if (i === COUNT / 2) {
        try {
          step = 'replSetStepDown';
          await client.db('admin').command({ replSetStepDown: 10 });
        } catch (e) {
          // The chaos timer may have moved the primary between selection and the command.
          console.log(`replSetStepDown raced a step-down: ${e.message}`);
        }
      }
      await sleep(10);
    }
    step = 'reading the change stream';
    try {
      await reader;
    } catch (e) {
      throw new Error(`change stream failed after ${seen.length} events: ${e.stack}`);
    }
    step = 'checking';
    assert.ok(primaries.size >= 2, `the primary never moved: ${[...primaries]}`);
    assert.strictEqual(acknowledgedInserts, COUNT);
    assert.strictEqual(await coll.countDocuments({}), COUNT + 1, 'a write was lost or doubled');
    const counter = await counters.findOne({ _id: 'c' });
    assert.strictEqual(counter.n, acknowledgedIncs + appliedWithWriteConcernError,
                       'an increment was lost or applied twice');
    const retried = [...attempts.values()].filter((n) => n > 1).length;
    assert.ok(writeConcernErrors >= 3, `only ${writeConcernErrors} writeConcernErrors fired`);
    assert.ok(retried >= writeConcernErrors - appliedWithWriteConcernError, `${retried} retries`);
    assert.deepStrictEqual(seen, [...Array(COUNT).keys()], 'events lost, repeated or out of order');
    assert.strictEqual(new Set(tokens).size, COUNT, 'duplicate resume tokens');
    assert.deepStrictEqual([...tokens].sort(), tokens, 'resume tokens not ordered');
    await stream.close();
    console.log(`replset ok: ${COUNT} events across ${primaries.size} primaries, ` +
                `${acknowledgedIncs} increments applied once, ${retried} writes retried ` +
                `(${writeConcernErrors} after a writeConcernError)`);
  } finally {
    await client.close();
  }
}

main(process.argv[2]).then(
  () => process.exit(0),
  (e) => {
    console.error(`FAIL while ${step}:`);
    console.error(e);
    process.exit(1);
  });
