/**
 * Platform throughput with and without one enabled `while (true) {}` rule: a real FLUX process, 100
 * Modbus devices publishing QoS1 as fast as FLUX acknowledges (two generator processes), the
 * default flow (decode → rules → store) with an ordinary rule, and the stored messages per second.
 */
import type { BenchRow } from '../types.ts';
import { startLoad } from './load.ts';
import { MODBUS_FRAME_HEX, metric, procStats, provisionModbusUnits, scrape, startFlux, tempDir, type FluxProcess } from './flux.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function createRule(flux: FluxProcess, name: string, script: string): Promise<string> {
  const res = await flux.api('POST', '/api/rules', { name, enabled: true, trigger_script: script, action_type: 'flow', action_config: {} });
  if (res.status !== 201) throw new Error(`creating rule ${name} failed: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.id as string;
}

async function storedPerSecond(looping: boolean, seconds: number): Promise<{ rate: number; cpu: number; note: string }> {
  const dataDir = tempDir('flux-bench-loop-');
  const devices = await provisionModbusUnits(dataDir, { productKey: 'bench', count: 100, metadata: { properties: [{ id: 'temperature', type: 'float', unit: '°C' }] } });
  const flux = await startFlux({ FLUX_LOG_LEVEL: 'error' }, { dataDir, timeoutMs: 60_000 });
  try {
    await createRule(flux, 'bench high temperature', 'let temp = msg.values.temperature;\nif (temp > 100.0) { return true; } else { return false; }');
    const loopId = looping ? await createRule(flux, 'looping rule', 'while (true) {}') : undefined;
    const load = await startLoad({ host: '127.0.0.1', port: flux.mqtt, devices, payloadHex: MODBUS_FRAME_HEX, qos: 1, processes: 2 });
    try {
      // warm-up: JIT, plugin and script workers, SQLite pages (and the looping rule meets its limits)
      await load.run(0, 2);
      await sleep(500);
      const m0 = await scrape(flux);
      const c0 = procStats(flux.child.pid!);
      const r = await load.run(0, seconds);
      const m1 = await scrape(flux);
      const c1 = procStats(flux.child.pid!);
      const stored = metric(m1, 'flux_storage_points_written_total') - metric(m0, 'flux_storage_points_written_total');
      let note = `QoS1 unthrottled, 100 devices, ${r.sent} sent in ${r.seconds.toFixed(1)} s`;
      if (loopId) {
        const rule = (await flux.api('GET', `/api/rules/${loopId}`)).body;
        note += `; looping rule: ${rule.stats.runs} runs, ${rule.stats.errors} errors, quarantined ${rule.quarantined}`;
      }
      return { rate: stored / r.seconds, cpu: ((c1.cpuSeconds - c0.cpuSeconds) / r.seconds) * 100, note };
    } finally {
      await load.close();
    }
  } finally {
    await flux.stop();
  }
}

export async function platformThroughput(quick: boolean): Promise<BenchRow[]> {
  const seconds = quick ? 4 : 8;
  const plain = await storedPerSecond(false, seconds);
  const looping = await storedPerSecond(true, seconds);
  return [
    { group: 'rules', name: 'platform throughput (MQTT → decode → rule → store), no looping rule', value: plain.rate, unit: 'msg/s stored', note: `${plain.note}; FLUX CPU ${plain.cpu.toFixed(0)}%` },
    {
      group: 'rules', name: 'platform throughput with one looping rule enabled (`while (true) {}`)', value: looping.rate, unit: 'msg/s stored',
      target: `>= 80% of ${Math.round(plain.rate)}`, met: looping.rate >= 0.8 * plain.rate, note: `${((looping.rate / plain.rate) * 100).toFixed(0)}% of the above; ${looping.note}; FLUX CPU ${looping.cpu.toFixed(0)}%`,
    },
  ];
}
