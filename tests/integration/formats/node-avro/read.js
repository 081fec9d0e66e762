'use strict';
// Reads a penne Avro object container file with avsc and compares every record with the
// values the C++ test computed from the input events.
//
//   node read.js FILE.avro EXPECTED.json
//
// EXPECTED.json: {"codec": "...", "schemaName": "...", "records": [{field: value, ...}, ...]}
// with longs as decimal strings (txn numbers reach 2^63 - 1, beyond a JavaScript number).
// Longs are therefore decoded as BigInt through avsc's LongType.__with. The snappy codec is
// wired here with snappyjs, and each block's CRC-32 (big-endian, of the uncompressed bytes)
// is checked. Prints "OK <n> records" and exits 0 when everything matches.

const fs = require('fs');
const avro = require('avsc');
const snappy = require('snappyjs');

const [file, expectedPath] = process.argv.slice(2);
if (!file || !expectedPath) {
  console.error('usage: node read.js FILE.avro EXPECTED.json');
  process.exit(2);
}
const expected = JSON.parse(fs.readFileSync(expectedPath, 'utf8'));

const crcTable = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const codecs = {
  null: (buf, cb) => cb(null, buf),
  deflate: avro.streams.BlockDecoder.getDefaultCodecs().deflate,
  snappy: (buf, cb) => {
    try {
      const data = Buffer.from(snappy.uncompress(buf.subarray(0, buf.length - 4)));
      const stored = buf.readUInt32BE(buf.length - 4);
      if (crc32(data) !== stored) {
        cb(new Error('snappy block CRC-32 mismatch'));
        return;
      }
      cb(null, data);
    } catch (err) {
      cb(err);
    }
  },
};

const bigLong = avro.types.LongType.__with({
  fromBuffer: (buf) => buf.readBigInt64LE(),
  toBuffer: (n) => {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64LE(BigInt(n));
    return buf;
  },
  fromJSON: (x) => BigInt(x),
  toJSON: (n) => Number(n),
  isValid: (n) => typeof n === 'bigint',
  compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0),
});

const header = avro.extractFileHeader(file, {decode: false});
if (!header) {
  console.error('not an Avro object container file');
  process.exit(1);
}
const schema = JSON.parse(header.meta['avro.schema'].toString());
const codec = header.meta['avro.codec'].toString();
// The writer's schema, with longs as BigInt, as the reader schema. The registry covers
// "long"; the typeHook covers the {"type": "long", "logicalType": ...} form, which avsc
// would otherwise build as a plain (precision-checking) long.
const readerType = avro.Type.forSchema(schema, {
  registry: {long: bigLong},
  typeHook: (s) => (s && typeof s === 'object' && s.type === 'long' ? bigLong : undefined),
});
const longs = [];
for (const f of readerType.fields) {
  const branches = f.type.types || [f.type];
  if (branches.some((t) => t.typeName === 'long')) longs.push(f.name);
}
if (longs.length) {
  console.error(`fields still decoded as JavaScript numbers: ${longs.join(', ')}`);
  process.exit(1);
}

const failures = [];
if (codec !== expected.codec) failures.push(`codec ${codec}, expected ${expected.codec}`);
if (readerType.name !== expected.schemaName) {
  failures.push(`schema ${readerType.name}, expected ${expected.schemaName}`);
}

function show(v) {
  return typeof v === 'bigint' ? `${v}n` : JSON.stringify(v);
}

const records = [];
let blocks = 0;
avro
  .createFileDecoder(file, {codecs, readerSchema: readerType})
  .on('block', () => blocks++)
  .on('data', (r) => records.push(r))
  .on('error', (err) => {
    console.error(`avsc failed: ${err.message}${err.cause ? ` (${err.cause.message})` : ''}`);
    process.exit(1);
  })
  .on('end', () => {
    if (records.length !== expected.records.length) {
      failures.push(`${records.length} records, expected ${expected.records.length}`);
    }
    const n = Math.min(records.length, expected.records.length);
    for (let i = 0; i < n; i++) {
      const got = records[i];
      const want = expected.records[i];
      const names = new Set([...Object.keys(got), ...Object.keys(want)]);
      for (const name of names) {
        const g = got[name];
        const w = want[name];
        let same;
        if (w === null) same = g === null;
        else if (typeof g === 'bigint') same = g.toString() === w;
        else same = typeof g === 'string' && g === w;
        if (!same) failures.push(`record ${i} field ${name}: ${show(g)}, expected ${show(w)}`);
      }
    }
    if (failures.length) {
      console.error(failures.slice(0, 20).join('\n'));
      process.exit(1);
    }
    console.log(`OK ${records.length} records in ${blocks} blocks, codec ${codec}`);
  });
