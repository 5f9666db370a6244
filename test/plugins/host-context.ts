/** An in-process plugin host on a fresh SQLite registry and temp folders (no HTTP, no broker). */
import fs from 'node:fs';
import path from 'node:path';
import { loadSettings } from '../../settings.ts';
import type { Registry } from '../../runtime/registry/index.ts';
import type { FluxContext } from '../../runtime/app/index.ts';
import { createPluginHost, type PluginHost, type PluginHostOptions } from '../../runtime/plugins/index.ts';
import { tempDir } from '../helpers/flux-process.ts';
import { testContext } from '../helpers/context.ts';

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
  const { ctx, logs } = await testContext(settings);
  const { registry } = ctx;
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
