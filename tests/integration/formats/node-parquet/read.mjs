// Reads one Parquet file with two independent readers and prints what each saw as one JSON
// document, for integration_parquet (tests/integration/formats) to compare with
// the events it wrote:
//   { "duckdb":    { "columns": [{name, type}], "rows": [[cell, …]], "chunks": [{column,
//                    compression, null_count, min, max}] },
//     "hyparquet": { "columns": [{name, type, repetition, converted, logical, utc, unit}],
//                    "num_rows", "rows": [[cell, …]] } }
// Cells are strings or null: text as it is, integers in decimal, timestamps as DuckDB's
// epoch_us (microseconds since the epoch, UTC) and as hyparquet's Date.getTime()
// (milliseconds since the epoch).
// Usage: node read.mjs FILE.parquet [OUT.json]   (stdout when OUT is not given)
import { DuckDBInstance } from '@duckdb/node-api'
import { parquetMetadata, parquetReadObjects } from 'hyparquet'
import { compressors } from 'hyparquet-compressors'
import { readFileSync, writeFileSync } from 'node:fs'

const path = process.argv[2]
const sqlString = s => `'${s.replaceAll("'", "''")}'`
const ident = s => `"${s.replaceAll('"', '""')}"`

async function readWithDuckDB() {
  const instance = await DuckDBInstance.create(':memory:')
  const conn = await instance.connect()
  const source = `read_parquet(${sqlString(path)}, file_row_number = true)`
  const described = await conn.runAndReadAll(`DESCRIBE SELECT * EXCLUDE (file_row_number) FROM ${source}`)
  const columns = described.getRowObjects().map(r => ({ name: r.column_name, type: r.column_type }))
  const cells = columns.map(c =>
    c.type.startsWith('TIMESTAMP') ? `CAST(epoch_us(${ident(c.name)}) AS VARCHAR)` : `CAST(${ident(c.name)} AS VARCHAR)`)
  const result = await conn.runAndReadAll(`SELECT ${cells.join(', ')} FROM ${source} ORDER BY file_row_number`)
  const meta = await conn.runAndReadAll(
    `SELECT path_in_schema, compression, CAST(stats_null_count AS VARCHAR), stats_min_value, stats_max_value
       FROM parquet_metadata(${sqlString(path)}) ORDER BY row_group_id, column_id`)
  const chunks = meta.getRows().map(([column, compression, nulls, min, max]) =>
    ({ column, compression, null_count: nulls, min, max }))
  conn.closeSync()
  return { columns, rows: result.getRows(), chunks }
}

async function readWithHyparquet() {
  const bytes = readFileSync(path)
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
  const metadata = parquetMetadata(file)
  const leaves = metadata.schema.slice(1)
  const columns = leaves.map(s => ({
    name: s.name,
    type: s.type,
    repetition: s.repetition_type,
    converted: s.converted_type ?? null,
    logical: s.logical_type?.type ?? null,
    utc: s.logical_type?.isAdjustedToUTC ?? null,
    unit: s.logical_type?.unit ?? null,
  }))
  const objects = await parquetReadObjects({ file, metadata, compressors })
  const cell = v => {
    if (v === null || v === undefined) return null
    if (v instanceof Date) return String(v.getTime())
    if (typeof v === 'bigint' || typeof v === 'number') return String(v)
    if (typeof v === 'string') return v
    throw new Error(`unexpected value of type ${typeof v}`)
  }
  const rows = objects.map(o => columns.map(c => cell(o[c.name])))
  return { columns, num_rows: String(metadata.num_rows), rows }
}

const out = { duckdb: await readWithDuckDB(), hyparquet: await readWithHyparquet() }
const text = JSON.stringify(out, (k, v) => (typeof v === 'bigint' ? String(v) : v))
if (process.argv[3]) writeFileSync(process.argv[3], text)
else process.stdout.write(text)
