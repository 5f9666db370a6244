/** One line of `npm run bench`'s table. */
export interface BenchRow {
  /** the area: plugins, rules, storage, broker, pipeline… */
  group: string;
  /** what was measured, e.g. "decode, Modbus (Rust), batched workers" */
  name: string;
  value: number;
  unit: string;
  /** the target, as a human string (e.g. ">= 330k/s") */
  target?: string;
  /** true/false when a target exists and was met/missed */
  met?: boolean;
  note?: string;
}

/** A bench file (`bench/<name>.bench.ts`) default-exports this. Bounded in time; traffic on 127.0.0.1 only. */
export type Bench = (opts: { quick: boolean }) => Promise<BenchRow[]>;
