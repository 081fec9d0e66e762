'use strict';
// The npm MongoDB driver 7.x judges mongosim's document pre- and post-images, expanded events
// and $changeStreamSplitLargeEvent, the way a MongoDB 7.0 replica set serves them:
//  - create/collMod with changeStreamPreAndPostImages (listCollections shows the option);
//  - fullDocument whenAvailable/required (the post-image of that change, not the current
//    document as updateLookup gives) and fullDocumentBeforeChange off/whenAvailable/required
//    (required without an image fails the stream with NoMatchingDocument, 47); images go away
//    with a dropped collection;
//  - showExpandedEvents: create, createIndexes, dropIndexes, modify and rename with their
//    operationDescription and collectionUUID; none of them without the option;
//  - an event over 16 MiB fails with BSONObjectTooLarge (10334), or arrives split into
//    fragments with splitEvent {fragment, of} and a token per fragment that a stream resumes
//    from (the next fragment follows).
//   NODE_PATH=<this dir>/node/node_modules node images.js 'mongodb://127.0.0.1:PORT/?replicaSet=rs0'
// Exit status 0 and a last line "OK ..." on success; 1 with the first mismatch otherwise.

const assert = require('assert');
const mongodb = require('mongodb');
const driverVersion = require('mongodb/package.json').version;

const uri = process.argv[2];
if (!uri) {
  console.error('usage: node images.js <mongodb uri>');
  process.exit(2);
}

const MiB = 1024 * 1024;

function uuidHex(v) {
  assert.ok(v && v.sub_type === 4, `a UUID (binary subtype 4): ${JSON.stringify(v)}`);
  return Buffer.from(v.buffer).toString('hex');
}

async function next(stream, what) {
  const e = await stream.next();
  assert.ok(e, `an event for ${what}`);
  return e;
}

// Expects the stream's next read to fail with `code`.
async function expectError(stream, code, what) {
  let err = null;
  try {
    await stream.next();
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: expected error ${code}, got an event`);
  assert.strictEqual(err.code, code, `${what}: ${err && err.message}`);
  await stream.close().catch(() => {});
  return err;
}

async function main() {
  const client = await mongodb.MongoClient.connect(uri);
  try {
    const db = client.db(`images_${process.pid}`);
    const start = {startAtOperationTime: (await db.command({ping: 1})).operationTime};
    const expanded = db.watch([], {...start, showExpandedEvents: true});
    const plainDb = db.watch([], start);

    // ---- create with images; listCollections shows the option ------------------------------
    await db.createCollection('orders', {changeStreamPreAndPostImages: {enabled: true}});
    const [info] = await db.listCollections({name: 'orders'}).toArray();
    assert.deepStrictEqual(info.options, {changeStreamPreAndPostImages: {enabled: true}},
                           JSON.stringify(info));
    const ordersUuid = uuidHex(info.info.uuid);
    const orders = db.collection('orders');

    const t0 = {startAtOperationTime: (await db.command({ping: 1})).operationTime};
    const images = orders.watch([], {...t0, fullDocument: 'whenAvailable',
                                     fullDocumentBeforeChange: 'required'});
    const lookup = orders.watch([], {...t0, fullDocument: 'updateLookup'});
    const noImages = orders.watch([], t0);
    const off = orders.watch([], {...t0, fullDocumentBeforeChange: 'off'});
    await orders.insertOne({_id: 1, n: 1});
    await orders.updateOne({_id: 1}, {$set: {n: 2}});
    await orders.updateOne({_id: 1}, {$set: {n: 3}});
    await orders.replaceOne({_id: 1}, {n: 4, r: true});
    await orders.deleteOne({_id: 1});

    const ins = await next(images, 'insert');
    assert.strictEqual(ins.operationType, 'insert');
    assert.deepStrictEqual(ins.fullDocument, {_id: 1, n: 1});
    assert.ok(!('fullDocumentBeforeChange' in ins), JSON.stringify(ins));
    const expectImages = [
      ['update', {_id: 1, n: 1}, {_id: 1, n: 2}],
      ['update', {_id: 1, n: 2}, {_id: 1, n: 3}],
      ['replace', {_id: 1, n: 3}, {_id: 1, n: 4, r: true}],
      ['delete', {_id: 1, n: 4, r: true}, undefined],
    ];
    for (const [op, before, after] of expectImages) {
      const e = await next(images, op);
      const ctx = JSON.stringify(e);
      assert.strictEqual(e.operationType, op, ctx);
      assert.deepStrictEqual(e.fullDocumentBeforeChange, before, ctx);
      assert.deepStrictEqual(e.fullDocument, after, ctx);
    }
    // updateLookup reads the current document (deleted by now), not the change's post-image.
    await next(lookup, 'insert');
    const looked = await next(lookup, 'update');
    assert.strictEqual(looked.fullDocument, null, JSON.stringify(looked));
    // Without the options, no images at all.
    await next(noImages, 'insert');
    const bare = await next(noImages, 'update');
    assert.ok(!('fullDocument' in bare) && !('fullDocumentBeforeChange' in bare),
              JSON.stringify(bare));
    // "off" asks for no pre-image, even where the collection records them.
    await next(off, 'insert');
    for (const op of ['update', 'update', 'replace', 'delete']) {
      const e = await next(off, op);
      assert.ok(!('fullDocumentBeforeChange' in e), JSON.stringify(e));
    }
    await Promise.all([images.close(), lookup.close(), noImages.close(), off.close()]);

    // ---- a collection without images: whenAvailable gives null, required fails -------------
    const plain = db.collection('plain');
    await plain.insertOne({_id: 1, n: 1});
    // Streams that start now: tryNext() sends the aggregate (no event yet).
    const available = plain.watch([], {fullDocumentBeforeChange: 'whenAvailable',
                                       fullDocument: 'whenAvailable'});
    const required = plain.watch([], {fullDocumentBeforeChange: 'required'});
    const requiredPost = plain.watch([], {fullDocument: 'required'});
    for (const s of [available, required, requiredPost])
      assert.strictEqual(await s.tryNext(), null);
    await plain.updateOne({_id: 1}, {$set: {n: 2}});
    const nullImages = await next(available, 'update without images');
    assert.strictEqual(nullImages.fullDocumentBeforeChange, null, JSON.stringify(nullImages));
    assert.strictEqual(nullImages.fullDocument, null, JSON.stringify(nullImages));
    const preErr = await expectError(required, 47, 'required pre-image');
    assert.match(preErr.message, /pre-image was not found/);
    const postErr = await expectError(requiredPost, 47, 'required post-image');
    assert.match(postErr.message, /post-image was not found/);

    // ---- collMod turns images on: a modify event, then images --------------------------------
    await db.command({collMod: 'plain', changeStreamPreAndPostImages: {enabled: true}});
    const [plainInfo] = await db.listCollections({name: 'plain'}).toArray();
    assert.deepStrictEqual(plainInfo.options.changeStreamPreAndPostImages, {enabled: true});
    await plain.updateOne({_id: 1}, {$set: {n: 3}});
    const withImages = await next(available, 'update after collMod');
    assert.deepStrictEqual(withImages.fullDocumentBeforeChange, {_id: 1, n: 2});
    assert.deepStrictEqual(withImages.fullDocument, {_id: 1, n: 3});
    await available.close();

    // ---- expanded events ---------------------------------------------------------------------
    await orders.createIndex({n: 1});
    await orders.dropIndex('n_1');
    await db.admin().command({renameCollection: `${db.databaseName}.orders`,
                              to: `${db.databaseName}.archive`});
    await db.collection('archive').drop();
    const want = [
      ['create', 'orders'], ['insert', 'orders'], ['update', 'orders'], ['update', 'orders'],
      ['replace', 'orders'], ['delete', 'orders'], ['create', 'plain'], ['insert', 'plain'],
      ['update', 'plain'], ['modify', 'plain'], ['update', 'plain'], ['createIndexes', 'orders'],
      ['dropIndexes', 'orders'], ['rename', 'orders'], ['drop', 'archive'],
    ];
    const seen = [];
    for (const [op, coll] of want) {
      const e = await next(expanded, `expanded ${op}`);
      seen.push(e);
      const ctx = JSON.stringify(e);
      assert.strictEqual(e.operationType, op, ctx);
      assert.strictEqual(e.ns.coll, coll, ctx);
      assert.ok(e.collectionUUID, `collectionUUID on ${ctx}`);
    }
    const byOp = (op) => seen.find((e) => e.operationType === op);
    assert.strictEqual(uuidHex(byOp('create').collectionUUID), ordersUuid);
    assert.deepStrictEqual(byOp('create').operationDescription,
                           {changeStreamPreAndPostImages: {enabled: true},
                            idIndex: {v: 2, key: {_id: 1}, name: '_id_'}});
    // The implicitly created 'plain' (by its first insert) has an idIndex only.
    assert.deepStrictEqual(seen[6].operationDescription,
                           {idIndex: {v: 2, key: {_id: 1}, name: '_id_'}});
    assert.deepStrictEqual(byOp('createIndexes').operationDescription,
                           {indexes: [{v: 2, key: {n: 1}, name: 'n_1'}]});
    assert.deepStrictEqual(byOp('dropIndexes').operationDescription,
                           {indexes: [{v: 2, key: {n: 1}, name: 'n_1'}]});
    const modify = byOp('modify');
    assert.deepStrictEqual(modify.operationDescription,
                           {changeStreamPreAndPostImages: {enabled: true}});
    assert.deepStrictEqual(Object.keys(modify.stateBeforeChange.collectionOptions), ['uuid']);
    const rename = byOp('rename');
    assert.deepStrictEqual(rename.to, {db: db.databaseName, coll: 'archive'});
    assert.deepStrictEqual(rename.operationDescription.to, {db: db.databaseName, coll: 'archive'});
    assert.strictEqual(uuidHex(byOp('drop').collectionUUID), ordersUuid, 'rename keeps the UUID');
    // The same database stream without showExpandedEvents: no create/index/modify events,
    // and no collectionUUID.
    const plainOps = [];
    for (let i = 0; i < want.length - 5; ++i) {
      const e = await next(plainDb, 'non-expanded');
      assert.ok(!('collectionUUID' in e) && !('operationDescription' in e), JSON.stringify(e));
      plainOps.push(e.operationType);
    }
    assert.deepStrictEqual(plainOps, want.map(([op]) => op).filter(
        (op) => !['create', 'createIndexes', 'dropIndexes', 'modify'].includes(op)));
    await Promise.all([expanded.close(), plainDb.close()]);

    // ---- images are dropped with their collection ---------------------------------------------
    const afterDrop = db.collection('orders').watch([], {...t0,
                                                         fullDocumentBeforeChange: 'whenAvailable'});
    await next(afterDrop, 'insert (dropped collection)');
    const gone = await next(afterDrop, 'update (dropped collection)');
    assert.strictEqual(gone.fullDocumentBeforeChange, null, JSON.stringify(gone));
    await afterDrop.close();

    // ---- large events --------------------------------------------------------------------------
    await db.createCollection('big', {changeStreamPreAndPostImages: {enabled: true}});
    const big = db.collection('big');
    const t2 = {startAtOperationTime: (await db.command({ping: 1})).operationTime};
    const opts = {...t2, fullDocument: 'required', fullDocumentBeforeChange: 'required'};
    const unsplit = big.watch([], opts);
    const split = big.watch([{$changeStreamSplitLargeEvent: {}}], opts);
    assert.strictEqual(await unsplit.tryNext(), null);
    await big.insertOne({_id: 'x', a: 'a'.repeat(10 * MiB)});
    await big.updateOne({_id: 'x'}, {$set: {b: 1}});  // pre + post images: about 20 MiB
    await big.insertOne({_id: 'after'});

    const first = await next(unsplit, 'big insert');
    assert.strictEqual(first.fullDocument.a.length, 10 * MiB);
    await expectError(unsplit, 10334, 'an event over 16 MiB without the split stage');

    const bigInsert = await next(split, 'big insert (split stream)');
    assert.ok(!('splitEvent' in bigInsert), 'a 10 MiB event is not split');
    const f1 = await next(split, 'fragment 1');
    const f2 = await next(split, 'fragment 2');
    assert.deepStrictEqual(f1.splitEvent, {fragment: 1, of: 2}, JSON.stringify(f1.splitEvent));
    assert.deepStrictEqual(f2.splitEvent, {fragment: 2, of: 2});
    assert.notStrictEqual(f1._id._data, f2._id._data);
    assert.ok(f1._id._data < f2._id._data, 'fragment tokens are ordered');
    // The first fragment carries the event's context; together they are the whole event.
    assert.strictEqual(f1.operationType, 'update');
    assert.deepStrictEqual(f1.documentKey, {_id: 'x'});
    const whole = {...f1, ...f2};
    assert.strictEqual(whole.fullDocument.a.length, 10 * MiB);
    assert.strictEqual(whole.fullDocument.b, 1);
    assert.strictEqual(whole.fullDocumentBeforeChange.a.length, 10 * MiB);
    assert.ok(!('b' in whole.fullDocumentBeforeChange));
    const tail = await next(split, 'insert after the big update');
    assert.deepStrictEqual(tail.documentKey, {_id: 'after'});
    await split.close();

    // Resuming from the first fragment's token gives the second fragment, then the rest.
    const resumed = big.watch([{$changeStreamSplitLargeEvent: {}}],
                              {resumeAfter: f1._id, fullDocument: 'required',
                               fullDocumentBeforeChange: 'required'});
    const again = await next(resumed, 'fragment 2 after resume');
    assert.deepStrictEqual(again.splitEvent, {fragment: 2, of: 2});
    assert.strictEqual(again._id._data, f2._id._data);
    assert.deepStrictEqual((await next(resumed, 'after resume')).documentKey, {_id: 'after'});
    await resumed.close();
    // From the last fragment's token: the next event.
    const fromLast = big.watch([{$changeStreamSplitLargeEvent: {}}],
                               {resumeAfter: f2._id, fullDocument: 'required',
                                fullDocumentBeforeChange: 'required'});
    assert.deepStrictEqual((await next(fromLast, 'after last fragment')).documentKey,
                           {_id: 'after'});
    await fromLast.close();
    // A fragment's token without the split stage is refused.
    const noStage = big.watch([], {resumeAfter: f1._id});
    await expectError(noStage, 7182501, 'fragment token without the split stage');

    console.log(`OK node mongodb ${driverVersion}: images, expanded events and split events`);
  } finally {
    await client.close();
  }
}

main().catch((err) => {
  console.error(`FAIL node mongodb ${driverVersion}:`, err && err.stack ? err.stack : err);
  process.exit(1);
});
