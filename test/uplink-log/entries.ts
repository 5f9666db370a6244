/** Entries for the uplink log's tests: entry `i` of three devices of one product. */
import type { AppendInput } from '../../runtime/uplink-log/index.ts';

export const up = (i: number, extra: Partial<AppendInput> = {}): AppendInput => ({
  id: `msg-${i}`,
  deviceId: `dev-${i % 3}`,
  productId: 'prod-1',
  productKey: 'boiler',
  transport: 'mqtt',
  type: 'properties',
  topic: `/boiler/dev-${i % 3}/properties/report`,
  ts: 1_700_000_000_000 + i,
  payload: Buffer.from([1, 3, 2, i & 255, 0xc5, 0, 0]),
  ...extra,
});
