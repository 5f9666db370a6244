/**
 * Polled Modbus values go through the durable uplink log like every other uplink: appended before
 * the bus sees them (with their log position; like MQTT QoS 0 they do not wait for the fdatasync,
 * runtime/modbus/appender.ts), kept for the raw-traffic query, and, when the
 * process died before the flows finished them, put back on the bus at the next start still decoded
 * (so the flows skip decode again instead of handing the JSON to the product's decoder).
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { loadSettings } from '../../settings.ts';
import { testContext } from '../helpers/context.ts';
import { tempDir } from '../helpers/flux-process.ts';
import { until } from '../helpers/wait.ts';
import { createModbusMaster } from '../../runtime/modbus/index.ts';
import { createPresence } from '../../runtime/ingress/index.ts';
import { createDeviceBus, type UplinkMessage } from '../../runtime/bus/index.ts';
import { createMetrics } from '../../runtime/metrics/index.ts';
import { createUplinkLogModule } from '../../runtime/uplink-log/index.ts';
import { startSlave } from './slave.ts';

describe('modbus and the durable uplink log', function () {
  this.timeout(30_000);

  it('appends polled values before they reach the bus, and replays the unfinished ones after a crash still decoded', async function () {
    const settings = loadSettings({ FLUX_DATA_DIR: tempDir('flux-modbus-log-'), FLUX_LOG_LEVEL: 'warn' });
    const { ctx } = await testContext(settings);
    const slave = await startSlave('tcp');
    const logSettings = { ...settings, dataDir: path.join(settings.dataDir, 'crashed') };
    const first = createUplinkLogModule({ settings: logSettings, bus: ctx.bus, logger: ctx.log, metrics: createMetrics() });
    await first.start();
    await first.replay(); // flows running: uplinks go on the bus
    const presence = createPresence(ctx);
    const master = createModbusMaster({ registry: ctx.registry, journal: first.journal, presence, metrics: ctx.metrics, log: ctx.log, syncMs: 3_600_000 });
    const seen: UplinkMessage[] = [];
    // a flow that never finishes its messages: the process "dies" with them unhandled
    ctx.bus.on('uplink', seen, (up) => {
      seen.push(up);
      return new Promise<void>(() => {});
    });
    try {
      slave.unit(1).holding[0] = 453;
      slave.unit(1).holding[1] = 400;
      const product = await ctx.registry.products.create({
        key: 'boiler', name: 'Boiler',
        transport: { modbus: { interval_ms: 200, timeout_ms: 500, registers: [
          { property: 'temperature', function: 3, address: 0, type: 'int16', scale: 0.1 },
          { property: 'setpoint', function: 3, address: 1, type: 'int16', scale: 0.1 },
        ] } },
      });
      await ctx.registry.devices.create({ id: 'boiler-1', product_id: product.id, transport: { modbus: { host: '127.0.0.1', port: slave.port, unit: 1 } } });
      await master.start();
      await until('three polls on the bus', () => (seen.length >= 3 ? true : undefined));
      await master.stop();
      for (const up of seen) {
        assert.equal(up.transport, 'modbus');
        assert.ok(typeof up.logSeq === 'number' && up.logSeq > 0, 'on the bus with its position in the log: appended first');
        assert.deepEqual(up.decoded!.values, { temperature: 45.3, setpoint: 40 });
      }
      const logged = await until('every poll in the log', async () => {
        const rows = await first.log.read({ deviceId: 'boiler-1', limit: 100 });
        return rows.length >= seen.length ? rows : undefined;
      });
      assert.deepEqual(logged.map((r) => r.seq), seen.map((u) => u.logSeq), 'every poll is in the log, in order');
      assert.equal(logged[0]!.transport, 'modbus');
      assert.deepEqual(JSON.parse(logged[0]!.payload.toString()).values, { temperature: 45.3, setpoint: 40 });
      await first.stop();

      // the next start: what the flows never finished comes back, decoded as the register map had it
      const bus = createDeviceBus(ctx.log);
      const replayed: UplinkMessage[] = [];
      bus.on('uplink', replayed, (up) => void replayed.push(up));
      const second = createUplinkLogModule({ settings: logSettings, bus, logger: ctx.log, metrics: createMetrics() });
      await second.start();
      assert.equal(await second.replay(), seen.length);
      await second.stop();
      assert.deepEqual(replayed.map((u) => u.id), seen.map((u) => u.id));
      for (const [i, up] of replayed.entries()) {
        assert.equal(up.transport, 'modbus');
        assert.deepEqual(up.decoded, seen[i]!.decoded, 'replayed still decoded: decode is skipped as the first time');
      }
    } finally {
      await master.stop();
      await presence.flush();
      await ctx.registry.stop();
      await slave.close();
    }
  });
});
