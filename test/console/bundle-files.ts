/** What a first visit of the console downloads, read from the built bundle (console/dist). */
import fs from 'node:fs';
import path from 'node:path';

/** Scripts index.html loads, and their static imports: what a first visit downloads before any lazy page. */
export function initialScripts(dist: string): string[] {
  const html = fs.readFileSync(path.join(dist, 'index.html'), 'utf8');
  const seen = new Set<string>();
  const queue = [...html.matchAll(/<(?:script|link)[^>]+(?:src|href)="\/console\/([^"]+\.js)"/g)].map((m) => m[1]!);
  while (queue.length) {
    const f = queue.shift()!;
    if (seen.has(f)) continue;
    seen.add(f);
    const src = fs.readFileSync(path.join(dist, f), 'utf8');
    // static imports only (`import … from "./x.js"`), not `import("./x.js")`
    for (const m of src.matchAll(/(?:^|[;}\s])import\s*(?:[\w${}*,\s]+from\s*)?["']\.\/([^"']+\.js)["']/g)) queue.push(`assets/${m[1]}`);
  }
  return [...seen];
}
