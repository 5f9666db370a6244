/**
 * Modbus slaves in their own process for `npm run bench -- modbus` (so the master's CPU is measured
 * alone): argv[2] = JSON `[{ mode, units, muted?, delayMs? }]`; prints one JSON line of their ports, serves
 * until stdin closes.
 */
import { startSlave } from '../../test/modbus/slave.ts';

const specs = JSON.parse(process.argv[2] ?? '[]') as { mode: 'tcp' | 'rtu-over-tcp'; units: number; muted?: number[]; delayMs?: number }[];
const ports: number[] = [];
for (const s of specs) {
  const slave = await startSlave(s.mode);
  for (let u = 1; u <= s.units; u++) {
    const unit = slave.unit(u);
    for (let a = 0; a < 10; a++) unit.holding[a] = u * 10 + a;
  }
  for (const m of s.muted ?? []) slave.muted.add(m);
  slave.delayMs = s.delayMs ?? 0;
  ports.push(slave.port);
}
process.stdout.write(JSON.stringify(ports) + '\n');
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
