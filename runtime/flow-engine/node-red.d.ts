// The slice of Node-RED's embedding API FLUX uses (node-red ships no types of its own).
declare module 'node-red' {
  import type http from 'node:http';
  import type express from 'express';
  interface NodeRedEmbedded {
    init(server: http.Server, settings: Record<string, unknown>): void;
    start(): Promise<void>;
    stop(): Promise<void>;
    httpAdmin: express.Express;
    httpNode: express.Express;
    runtime: {
      /** Node-RED's runtime API (@node-red/runtime/lib/api/flows.js) */
      flows: {
        getFlows(opts: Record<string, unknown>): Promise<{ flows: Record<string, unknown>[]; rev?: string }>;
        setFlows(opts: { flows: { flows: Record<string, unknown>[] }; deploymentType?: 'full' }): Promise<{ rev: string }>;
        /** `reload`: loads the flows from the storage module again and restarts them */
        setFlows(opts: { deploymentType: 'reload' }): Promise<{ rev: string }>;
      };
      [k: string]: unknown;
    };
    nodes: { getNode(id: string): unknown; eachNode(cb: (n: { id: string; type: string }) => void): void; [k: string]: unknown };
    settings: Record<string, unknown>;
    hooks: { add(id: string, cb: (ev: any) => void): void; remove(id: string): void };
    events: import('node:events').EventEmitter;
  }
  const RED: NodeRedEmbedded;
  export default RED;
}
