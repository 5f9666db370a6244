/** An in-process plugin host on a fresh SQLite registry and temp folders (no HTTP, no broker). */
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { loadSettings } from '../../settings.ts';
import { createLogger } from '../../runtime/log/index.ts';
import { createRegistry, type Registry } from '../../runtime/registry/index.ts';
import { createDeviceBus } from '../../runtime/bus/index.ts';
import { createMetrics } from '../../runtime/metrics/index.ts';
import { createTracer } from '../../runtime/trace/index.ts';
import type { FluxContext } from '../../runtime/app/index.ts';
import { createPluginHost, type PluginHost, type PluginHostOptions } from '../../runtime/plugins/index.ts';
import { tempDir } from '../helpers/flux-process.ts';

export interface HostFixture {
  host: PluginHost;
  ctx: FluxContext;
  registry: Registry;
  dataDir: string;
  pluginsDir: string;
  logs: Record<string, any>[];
  stop(): Promise<void>;
}

export async function startHost(opts: PluginHostOptions & { dataDir?: string; pluginsDir?: string } = {}): Promise<HostFixture> {
  const dataDir = opts.dataDir ?? tempDir('flux-plugins-');
  const pluginsDir = opts.pluginsDir ?? path.join(dataDir, 'drop');
  fs.mkdirSync(pluginsDir, { recursive: true });
  const settings = loadSettings({ FLUX_DATA_DIR: dataDir, FLUX_PLUGINS_DIR: pluginsDir, FLUX_ADMIN_TOKEN: 'test-admin-token-0123456789abcdef' });
  const logs: Record<string, any>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split('\n')) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  const log = createLogger({ level: 'debug', destination: sink });
  const registry = createRegistry({ db: settings.db, log });
  await registry.start();
  const ctx = {
    settings,
    log,
    registry,
    bus: createDeviceBus(log),
    metrics: createMetrics(),
    trace: createTracer(),
    adminToken: 'test-admin-token-0123456789abcdef',
    services: new Map(),
  } as FluxContext;
  const host = createPluginHost(ctx, opts);
  await host.start();
  return {
    host,
    ctx,
    registry,
    dataDir,
    pluginsDir,
    logs,
    async stop() {
      await host.stop();
      await registry.stop();
    },
  };
}
