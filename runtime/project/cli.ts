/**
 * `flux export` and `flux import`: move a project between two running FLUX instances through their
 * API (GET /api/project/export, POST /api/project/import; docs/operations.md "Moving a project").
 *
 *   flux export [-o project.json] [--url URL] [--token TOKEN]
 *   flux import project.json [--secrets secrets.json] [--url URL] [--token TOKEN]
 *
 * URL: --url, FLUX_URL, else http://127.0.0.1:$FLUX_HTTP_PORT (1880). Token: --token, FLUX_TOKEN,
 * FLUX_ADMIN_TOKEN, else the admin-token file in FLUX_DATA_DIR (./data). Imported devices get new
 * secrets: written to --secrets (mode 0600), else printed once on stdout. Only `node:` modules here:
 * the commands start nothing of the server.
 */
import fs from 'node:fs';
import path from 'node:path';

const USAGE = `usage:
  flux export [-o FILE] [--url URL] [--token TOKEN]
  flux import FILE [--secrets FILE] [--url URL] [--token TOKEN]`;

interface Args {
  command: 'export' | 'import';
  file?: string;
  out?: string;
  secrets?: string;
  url?: string;
  token?: string;
}

function parseArgs(argv: string[]): Args {
  const [command, ...rest] = argv;
  if (command !== 'export' && command !== 'import') throw new Error(USAGE);
  const args: Args = { command };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const value = () => {
      const v = rest[++i];
      if (v === undefined) throw new Error(`${a} needs a value\n${USAGE}`);
      return v;
    };
    if (a === '-o' || a === '--out') args.out = value();
    else if (a === '--secrets') args.secrets = value();
    else if (a === '--url') args.url = value();
    else if (a === '--token') args.token = value();
    else if (!a.startsWith('-') && command === 'import' && !args.file) args.file = a;
    else throw new Error(`unknown argument '${a}'\n${USAGE}`);
  }
  if (command === 'import' && !args.file) throw new Error(`flux import needs the project file\n${USAGE}`);
  return args;
}

function tokenOf(args: Args, env: NodeJS.ProcessEnv): string {
  const given = args.token ?? env.FLUX_TOKEN ?? env.FLUX_ADMIN_TOKEN;
  if (given) return given;
  const file = path.resolve(env.FLUX_DATA_DIR?.trim() || './data', 'admin-token');
  try {
    return fs.readFileSync(file, 'utf8').trim();
  } catch {
    throw new Error(`no token: give --token, set FLUX_TOKEN, or run where ${file} exists`);
  }
}

async function call(url: string, token: string, init: RequestInit): Promise<unknown> {
  const res = await fetch(url, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers as Record<string, string>) } });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  if (!res.ok) {
    const err = (body as { error?: { code?: string; message?: string } })?.error;
    throw new Error(`${res.status} ${err?.code ?? ''}: ${err?.message ?? text.slice(0, 500)}`);
  }
  return body;
}

/** Runs the command; answers the exit code (0 done, 1 failed, 2 wrong usage). */
export async function runProjectCli(argv: string[], env: NodeJS.ProcessEnv = process.env, out: NodeJS.WritableStream = process.stdout, errOut: NodeJS.WritableStream = process.stderr): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    errOut.write(`${(err as Error).message}\n`);
    return 2;
  }
  try {
    const base = (args.url ?? env.FLUX_URL ?? `http://127.0.0.1:${env.FLUX_HTTP_PORT?.trim() || '1880'}`).replace(/\/+$/, '');
    const token = tokenOf(args, env);
    if (args.command === 'export') {
      const doc = (await call(`${base}/api/project/export`, token, {})) as { products: unknown[]; devices: unknown[]; rules: unknown[]; plugins: unknown[]; flows?: unknown[] };
      const text = JSON.stringify(doc, null, 1) + '\n';
      if (args.out) {
        fs.writeFileSync(args.out, text);
        errOut.write(`exported ${doc.products.length} products, ${doc.devices.length} devices, ${doc.rules.length} rules, ${doc.plugins.length} plugins, ${doc.flows?.length ?? 0} flow nodes to ${args.out}\n`);
      } else out.write(text);
      return 0;
    }
    const body = fs.readFileSync(args.file!);
    const report = (await call(`${base}/api/project/import`, token, { method: 'POST', body, headers: { 'content-type': 'application/json' } })) as {
      products: number;
      devices: { id: string; secret: string }[];
      rules: number;
      plugins: { id: string; installed: boolean }[];
      flows: number | null;
      warnings: string[];
    };
    errOut.write(`imported ${report.products} products, ${report.devices.length} devices, ${report.rules} rules, ${report.plugins.length} plugins, ${report.flows ?? 0} flow nodes\n`);
    for (const w of report.warnings) errOut.write(`warning: ${w}\n`);
    const secrets = JSON.stringify(report.devices, null, 1) + '\n';
    if (args.secrets) {
      fs.writeFileSync(args.secrets, secrets, { mode: 0o600 });
      errOut.write(`the devices' new secrets are in ${args.secrets} (shown nowhere else)\n`);
    } else if (report.devices.length) {
      errOut.write("the devices' new secrets (shown this once):\n");
      out.write(secrets);
    }
    return 0;
  } catch (err) {
    errOut.write(`flux ${args.command}: ${(err as Error).message}\n`);
    return 1;
  }
}
