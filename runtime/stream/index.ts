/**
 * @module stream — camera streams: RTSP in through one supervised ffmpeg per active camera,
 * HLS, HTTP-FLV, RTMP push, snapshots and recordings out (docs/streams.md).
 */
import type { FluxModule } from '../app/context.ts';
import type { RouteTable } from '../api/index.ts';
import { StreamService, type StreamServiceOptions } from './service.ts';
import { streamRoutes } from './routes.ts';

export { StreamService, type StreamServiceOptions, type StreamStatusChange, type StreamView } from './service.ts';
export type { Stream } from './store.ts';
export { STATUSES, type StreamStatus, type Timing } from './runner.ts';
export { reapLeftovers } from './process.ts';

export interface StreamModule extends FluxModule {
  readonly service: StreamService;
}

/** The stream module: its lifecycle for the composition root, its routes on the API's table. */
export function createStreamModule(opts: StreamServiceOptions, routes: RouteTable): StreamModule {
  const service = new StreamService(opts);
  streamRoutes(service, routes);
  return {
    name: 'streams',
    service,
    start: () => service.start(),
    stop: () => service.stop(),
    health: () => service.health(),
  };
}
