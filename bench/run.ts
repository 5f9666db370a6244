/**
 * `npm run bench [-- NAME…] [--quick] [--write]`: runs bench/*.bench.ts (or the named ones), prints
 * one table, and with --write records it in docs/benchmarks.md.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Bench, BenchRow } from './types.ts';

// Benches that run FLUX in this process run it as `npm start` does (runtime/cli.ts sets production
// mode); set before any bench imports a library that reads it at load (graphql-js)
process.env.NODE_ENV ??= 'production';

const dir = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const write = args.includes('--write');
const names = args.filter((a) => !a.startsWith('--'));
const files = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  // a name is its file's name, or a prefix of several when no file has exactly that name (`cluster` is not `cluster-log`)
  .filter((f, _, all) => names.length === 0 || names.some((n) => (all.includes(`${n}.bench.ts`) ? f === `${n}.bench.ts` : f.startsWith(n))))
  .sort();

const rows: BenchRow[] = [];
for (const f of files) {
  process.stderr.write(`bench: ${f}…\n`);
  const mod = (await import(path.join(dir, f))) as { default: Bench };
  try {
    rows.push(...(await mod.default({ quick })));
  } catch (err) {
    rows.push({ group: f.replace('.bench.ts', ''), name: 'FAILED', value: NaN, unit: '', note: (err as Error).message });
  }
}

const fmt = (v: number) => (Number.isNaN(v) ? '—' : Math.abs(v) >= 1000 ? Math.round(v).toLocaleString('en-US') : String(Math.round(v * 100) / 100));
const header = ['group', 'measure', 'value', 'unit', 'target', 'met', 'note'];
const table = [header, ...rows.map((r) => [r.group, r.name, fmt(r.value), r.unit, r.target ?? '', r.met === undefined ? '' : r.met ? 'yes' : 'NO', r.note ?? ''])];
const widths = header.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
for (const row of table) console.log(row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd());

if (write) {
  const md = [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...table.slice(1).map((row) => `| ${row.join(' | ')} |`),
  ].join('\n');
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  const file = path.join(dir, '..', 'docs', 'benchmarks.md');
  const section = `<!-- bench:${names.join(',') || 'all'} -->\n### \`npm run bench${names.length ? ' -- ' + names.join(' ') : ''}${quick ? ' --quick' : ''}\` — ${new Date().toISOString().slice(0, 10)}\n\n${machine}\n\n${md}\n<!-- /bench -->`;
  let doc = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n\nFigures measured with `npm run bench`; each section names the command that produced it.\n';
  const re = new RegExp(`<!-- bench:${names.join(',') || 'all'} -->[\\s\\S]*?<!-- /bench -->`);
  doc = re.test(doc) ? doc.replace(re, section) : `${doc.trimEnd()}\n\n${section}\n`;
  fs.writeFileSync(file, doc);
  console.error(`bench: wrote ${path.relative(process.cwd(), file)}`);
}
