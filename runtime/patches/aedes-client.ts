/**
 * Fenced patch: aedes 2.0.0-beta.1 Client internals (node_modules/aedes/lib/client.js), pinned
 * exactly in package.json. Three changes per connection, applied by the broker right after
 * `aedes.handle()` and after CONNECT:
 *
 * 1. **Read gate.** aedes reads again when the packets of its last read are handled, but also on
 *    every 'readable' event, and each of those lets one more batch in flight: under fan-in with a
 *    slow subscriber the in-flight packets grew without bound (~390k parsed packets, 200+ MB heap).
 *    Gated, a connection is read only when nothing of it is in flight (before CONNACK as aedes does).
 * 2. **A plain BufferList for the parser.** mqtt-packet's parser buffers through a
 *    BufferListStream, a whole Duplex per connection; it only uses its BufferList methods (append,
 *    consume, slice, read*), so a plain BufferList does: about 1 KB less per idle connection.
 * 3. **Trim after CONNECT.** The parser keeps the whole CONNECT packet (client id, user name,
 *    password and the socket chunk) as its `settings` but reads only two fields of it later; MQTT
 *    3.1.1 clients get a shared empty topic-alias map (aliases exist from MQTT 5 on).
 *
 * It also reads `_assignedClientId` (set when the broker chose the client id) and `_will` (the will of
 * the CONNECT, set before the authenticate hook runs). `aedesClientShape()`
 * checks all of it on a real aedes connection (test/patches/upstream-shape.test.ts).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { PassThrough, type Duplex } from 'node:stream';
import type { Aedes as AedesClass, Client } from 'aedes';

/** The Client fields these patches rely on. */
export type AedesClientInternals = Client & {
  _parser?: { _list?: unknown; settings?: { protocolVersion?: number; bridgeMode?: boolean } };
  _nextBatch?: () => void;
  _parsingBatch?: number;
  connackSent?: boolean;
  _topicAliases?: Map<number, string>;
  _assignedClientId?: string;
  _will?: { topic?: unknown } | null;
};

/** bl's plain BufferList, resolved the way mqtt-packet resolves bl: the class its parser's buffer mixes in. */
const aedesRequire = createRequire(import.meta.resolve('aedes'));
const BufferList = createRequire(aedesRequire.resolve('mqtt-packet'))('bl').BufferList as new () => unknown;

/** 'readable' of a gated connection: aedes' own read callback, only when none of its packets is in flight. */
function gatedReadable(this: Duplex & { client?: AedesClientInternals }): void {
  const c = this.client;
  if (!c || !c._nextBatch) return;
  if (c._parsingBatch! <= 0 || !c.connackSent) c._nextBatch();
}

/** Applies the read gate and the plain parser buffer to a connection aedes just took; answers false when aedes' shape differs. */
export function patchAedesConnection(client: Client, conn: Duplex): boolean {
  const c = client as AedesClientInternals;
  if (typeof c._nextBatch !== 'function' || typeof c._parsingBatch !== 'number' || !c._parser?._list) return false;
  conn.removeListener('readable', c._nextBatch);
  conn.on('readable', gatedReadable);
  c._parser._list = new BufferList();
  return true;
}

const parserSettings = new Map<string, { readonly protocolVersion?: number; readonly bridgeMode?: boolean }>();
function sharedParserSettings(s: { protocolVersion?: number; bridgeMode?: boolean }) {
  const key = `${s.protocolVersion}:${s.bridgeMode === true}`;
  let shared = parserSettings.get(key);
  if (!shared) parserSettings.set(key, (shared = Object.freeze({ protocolVersion: s.protocolVersion, bridgeMode: s.bridgeMode === true })));
  return shared;
}
/** Earlier clients than MQTT 5 share this never-written map instead of one each. */
const NO_TOPIC_ALIASES = new Map<number, string>();

/** After CONNECT: drops what aedes and mqtt-packet keep per connection but never use again. */
export function trimAfterConnect(client: Client): void {
  const c = client as AedesClientInternals;
  const parser = c._parser;
  if (parser?.settings) parser.settings = sharedParserSettings(parser.settings);
  if (c.version !== null && c.version < 5 && c._topicAliases?.size === 0) c._topicAliases = NO_TOPIC_ALIASES;
}

/** The will of a CONNECT being authenticated (aedes sets `_will` before its authenticate hook, `will` only after). */
export function connectWill(client: Client): { topic: string } | undefined {
  const will = (client as AedesClientInternals)._will;
  return will && typeof will.topic === 'string' ? (will as { topic: string }) : undefined;
}

/** Whether the broker, not the client, chose this client's id (an empty client id in CONNECT). */
export function brokerAssignedClientId(client: Client): boolean {
  return (client as AedesClientInternals)._assignedClientId !== undefined;
}

/** What of aedes' Client these patches need and a real connection does not have (empty: all there). */
export async function aedesClientShape(): Promise<string[]> {
  const missing: string[] = [];
  // aedes loads here, not on import: importing the patches loads no library (mqtt-packet-debug.ts)
  const { Aedes } = aedesRequire('aedes') as { Aedes: typeof AedesClass };
  const broker = await Aedes.createBroker();
  const conn = new PassThrough();
  try {
    const c = broker.handle(conn as never) as AedesClientInternals;
    if (typeof c._nextBatch !== 'function') missing.push('client._nextBatch is not a function');
    else if (!conn.listeners('readable').includes(c._nextBatch)) missing.push("client._nextBatch is not the connection's 'readable' listener");
    if (typeof c._parsingBatch !== 'number') missing.push('client._parsingBatch is not a number');
    if (typeof c.connackSent !== 'boolean') missing.push('client.connackSent is not a boolean');
    if (!(c._topicAliases instanceof Map)) missing.push('client._topicAliases is not a Map');
    const list = c._parser?._list as Record<string, unknown> | undefined;
    if (!list) missing.push('client._parser._list is missing');
    for (const m of ['append', 'consume', 'slice', 'readUInt8', 'readUInt16BE', 'readUInt32BE', 'get', 'length']) {
      if (list && !(m in list)) missing.push(`client._parser._list has no ${m}`);
      if (!(m in (new BufferList() as Record<string, unknown>))) missing.push(`bl's BufferList has no ${m}`);
    }
    if (!c._parser || !('settings' in c._parser)) missing.push('client._parser.settings is missing');
    const connect = fs.readFileSync(aedesRequire.resolve('./lib/handlers/connect.js'), 'utf8');
    if (!connect.includes('client._assignedClientId =')) missing.push('aedes no longer sets client._assignedClientId');
    if (!/client\._will = packet\.will\s+runSeries\([\s\S]{0,200}connectActions/.test(connect) || !/const connectActions = \[\s*authenticate,/.test(connect)) missing.push('aedes no longer sets client._will before it authenticates');
  } finally {
    conn.destroy();
    await new Promise<void>((r) => broker.close(() => r()));
  }
  return missing;
}
