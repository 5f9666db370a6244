/**
 * A child that appends to an uplink log as fast as it can and prints each acknowledged seq on
 * stdout; the test kills it with SIGKILL at a random moment and checks every printed seq survived.
 */
import { createUplinkLog, type FsyncPolicy } from '../../runtime/uplink-log/index.ts';

const [dir, fsync] = process.argv.slice(2) as [string, FsyncPolicy];
const log = createUplinkLog({ dir, fsync, retentionMs: 3_600_000, maxBytes: 64 * 1024 * 1024, segmentBytes: 256 * 1024 });
await log.open();
let n = 0;
const pump = () => {
  for (let i = 0; i < 200; i++) {
    n++;
    log.append(
      { id: `m${n}`, deviceId: `d${n % 7}`, productId: 'p', productKey: 'k', transport: 'mqtt', type: 'properties', topic: '/k/d/properties/report', ts: Date.now(), payload: Buffer.alloc(40 + (n % 50), n & 255) },
      (err, seq) => {
        if (!err) process.stdout.write(`${seq}\n`);
      },
    );
  }
  setImmediate(pump);
};
pump();
