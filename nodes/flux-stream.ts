/**
 * `flux stream`: camera stream control from flows. Input: `msg.action` (or the node's action)
 * `start`, `stop` or `snapshot` for the stream chosen in the dialog or given as `msg.stream`.
 * Output: a snapshot as `msg.payload` (JPEG Buffer) with `msg.url` (a signed URL to that picture,
 * relative to the server, valid 1 h); start/stop answer the stream's state; with "status changes"
 * on, every status change of the stream (of all streams when none is chosen) as
 * `msg.payload = { stream_id, status, previous, error, ts }`.
 */
import type { NodeAPI, Node, NodeDef } from './red.ts';
import type { StreamStatusChange } from '../runtime/stream/index.ts';
import { fluxOf } from './red.ts';

interface StreamDef extends NodeDef {
  stream?: string;
  action?: string;
  statusOut?: boolean;
}

const ACTIONS = ['start', 'stop', 'snapshot'] as const;

export default function register(RED: NodeAPI): void {
  // the dialog's stream chooser
  RED.httpAdmin.get('/flux-stream/streams', RED.auth.needsPermission('flows.read'), (_req: unknown, res: { json(v: unknown): void }) => {
    const streams = fluxOf(RED).streams;
    res.json(streams ? streams.list().map((s) => ({ id: s.id, name: s.name, status: s.state.status })) : []);
  });
  function FluxStream(this: Node, def: StreamDef): void {
    RED.nodes.createNode(this, def);
    const node = this;
    const streams = fluxOf(RED).streams;
    if (!streams) {
      node.status({ fill: 'red', shape: 'ring', text: 'flux-stream.status.not-running' });
      return;
    }
    const shape = (status: string) => ({
      fill: (status === 'live' ? 'green' : status === 'failed' ? 'red' : status === 'retrying' ? 'yellow' : 'grey') as 'green' | 'red' | 'yellow' | 'grey',
      shape: 'dot' as const,
      text: status,
    });
    const onStatus = (ch: StreamStatusChange) => {
      if (def.stream && ch.stream_id !== def.stream) return;
      if (def.stream) node.status(shape(ch.status));
      if (def.statusOut) node.send({ topic: `stream/${ch.stream_id}/status`, stream: ch.stream_id, payload: ch });
    };
    streams.on('status', onStatus);

    node.on('input', async (msg, send, done) => {
      try {
        const action = String(msg.action ?? def.action ?? 'snapshot');
        if (!(ACTIONS as readonly string[]).includes(action)) throw new Error(`msg.action must be one of ${ACTIONS.join(', ')}`);
        const id = String(msg.stream ?? def.stream ?? '');
        if (!id) throw new Error('no stream: choose one in the node or set msg.stream');
        if (action === 'snapshot') {
          const snap = await streams.saveSnapshot(id);
          send({ ...msg, topic: `stream/${id}/snapshot`, stream: id, payload: snap.jpeg, url: snap.url, filename: `${id}-${snap.ts}.jpg`, ts: snap.ts });
        } else {
          const view = action === 'start' ? streams.startPinned(id) : await streams.stopPinned(id);
          send({ ...msg, topic: `stream/${id}/${action}`, stream: id, payload: view });
        }
        done();
      } catch (err) {
        done(err as Error);
      }
    });
    node.on('close', (_removed, done) => {
      streams.off('status', onStatus);
      done();
    });
  }
  RED.nodes.registerType('flux stream', FluxStream);
}
