// Reads one CSV file with DuckDB's CSV reader (read_csv) and prints what it saw as one JSON
// document, for integration_csv (tests/integration/formats/csv_readback_test.cpp) to compare
// with the events it wrote:
//   { "text":  { "columns": [{name, type}], "rows": [[cell, …]] },   every column VARCHAR
//     "typed": [ { "timestampformat": F or null, "columns": [{name, type}], "rows": [[…]] } ] }
// Every read names the dialect (the delimiter, '"' as quote and escape, a header row); "text"
// reads every field as text, each "typed" read lets DuckDB's sniffer choose the column
// types, first with no timestamp format, then with each format given on the command line. Cells are strings or
// null: text as it is, timestamps as epoch_ms (milliseconds since the epoch, UTC), other
// values CAST to VARCHAR. Rows are in file order.
// Usage: node read_csv.mjs FILE.csv OUT.json DELIMITER_CODE [TIMESTAMP_FORMAT …]
import { DuckDBInstance } from '@duckdb/node-api'
import { writeFileSync } from 'node:fs'

const [path, outPath, delimiterCode, ...formats] = process.argv.slice(2)
const sqlString = s => `'${s.replaceAll("'", "''")}'`
const ident = s => `"${s.replaceAll('"', '""')}"`
const delimiter = String.fromCharCode(Number(delimiterCode))

const instance = await DuckDBInstance.create(':memory:')
const conn = await instance.connect()

async function read(options) {
  const source = `read_csv(${sqlString(path)}, header = true, delim = ${sqlString(delimiter)}, quote = '"', escape = '"'${options})`
  const described = await conn.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`)
  const columns = described.getRowObjects().map(r => ({ name: r.column_name, type: r.column_type }))
  const cells = columns.map(c =>
    c.type.startsWith('TIMESTAMP') ? `CAST(epoch_ms(${ident(c.name)}) AS VARCHAR)` : `CAST(${ident(c.name)} AS VARCHAR)`)
  const result = await conn.runAndReadAll(`SELECT ${cells.join(', ')} FROM ${source}`)
  return { columns, rows: result.getRows() }
}

const out = {
  text: await read(', all_varchar = true'),
  typed: [],
}
for (const format of [null, ...formats]) {
  const options = format === null ? '' : `, timestampformat = ${sqlString(format)}`
  out.typed.push({ timestampformat: format, ...(await read(options)) })
}
conn.closeSync()
writeFileSync(outPath, JSON.stringify(out, (k, v) => (typeof v === 'bigint' ? String(v) : v)))
