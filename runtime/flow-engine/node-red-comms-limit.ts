/**
 * Fenced patch of Node-RED's editor comms (`/editor/comms`, @node-red/editor-api
 * lib/editor/comms.js): it creates its WebSocket server with ws' default maxPayload of 100 MiB,
 * and accepts messages before the client authenticated. The editor only ever sends small
 * messages (its auth token, subscriptions), so its private copy of `ws` gets a 64 KiB default;
 * larger frames close the socket with 1009. Nothing else uses that copy (FLUX's own WebSocket
 * servers import the top-level `ws` and set their own limits). test/security/unauthenticated-limits
 * notices when upstream changes (a 1 MiB frame must be refused).
 */
import { createRequire } from 'node:module';

export const EDITOR_COMMS_MAX_PAYLOAD = 64 * 1024;

type WsServerClass = new (options: Record<string, unknown>, callback?: () => void) => object;

let applied = false;

export function limitEditorComms(): void {
  if (applied) return;
  applied = true;
  const commsRequire = createRequire(createRequire(import.meta.resolve('node-red')).resolve('@node-red/editor-api/lib/editor/comms.js'));
  const ws = commsRequire('ws') as { Server: WsServerClass };
  const Upstream = ws.Server;
  class BoundedServer extends Upstream {
    constructor(options: Record<string, unknown>, callback?: () => void) {
      super({ maxPayload: EDITOR_COMMS_MAX_PAYLOAD, ...options }, callback);
    }
  }
  ws.Server = BoundedServer;
}
