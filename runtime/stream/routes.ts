/**
 * /api/streams: CRUD, start/stop, signed playback URLs, and the media itself (HLS, HTTP-FLV,
 * snapshots, recordings, the player page). Media routes take the API token or a short-lived
 * signature (`?sig=`) scoped to one stream, for `<video>` tags that cannot send headers.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Request, Response } from 'express';
import { z } from 'zod';
import type { RouteTable } from '../api/index.ts';
import { FluxError } from '../errors/index.ts';
import { checkSlug, pathInside } from '../safe-id/index.ts';
import type { StreamService } from './service.ts';
import { SNAPSHOT_RE } from './snapshot.ts';
import { streamCreate, streamPatch } from './store.ts';
import { listSegments, vodPlaylist, SEGMENT_RE } from './recording.ts';
import { playerPage } from './player.ts';

const idParam = z.object({ id: z.string().min(1).max(200) });
const LIVE_SEGMENT_RE = /^s\d{1,20}\.ts$/;
const MAX_FLV_VIEWERS = 100;
const require = createRequire(import.meta.url);
const ASSETS: Record<string, string> = {
  'hls.min.js': 'hls.js/dist/hls.min.js',
  'mpegts.js': 'mpegts.js/dist/mpegts.js',
};

/** resolved on request: a checkout without `npm ci` still starts, and says what is missing */
function asset(name: string): string {
  const spec = Object.hasOwn(ASSETS, name) ? ASSETS[name] : undefined;
  if (!spec) throw new FluxError('not_found', `no player asset '${name}'`, 404);
  try {
    return require.resolve(spec);
  } catch {
    throw new FluxError('not_installed', `${spec.split('/')[0]} is not installed (run npm ci)`, 503);
  }
}

const time = z.union([z.string().regex(/^\d{1,15}$/).transform(Number), z.iso.datetime({ offset: true }).transform((s) => Date.parse(s))]);

function badName(what: string): FluxError {
  return new FluxError('invalid_id', `${what} is not a valid name`, 400);
}

export function streamRoutes(svc: StreamService, routes: RouteTable): void {
  const signed = (req: Request) => {
    const sig = req.query.sig;
    const id = req.params.id;
    return typeof sig === 'string' && typeof id === 'string' && sig.length < 200 && svc.keys.verify(id, sig);
  };
  const sigOf = (req: Request) => (typeof req.query.sig === 'string' ? `?sig=${encodeURIComponent(req.query.sig)}` : '');
  const send = (res: Response, file: string, type: string) =>
    new Promise<Response>((resolve, reject) => {
      res.sendFile(file, { headers: { 'Content-Type': type, 'Cache-Control': 'no-cache' }, dotfiles: 'deny' }, (err) => {
        if (!err) return resolve(res);
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as { status?: number }).status === 404) reject(new FluxError('not_found', `${path.basename(file)} is not (or no longer) there`, 404));
        else if (res.headersSent) resolve(res);
        else reject(err);
      });
    });

  routes
    .add({
      method: 'get', path: '/streams/_player/:file', tag: 'streams', summary: 'The player libraries (hls.js, mpegts.js), served by FLUX itself', auth: false, errors: [404, 503],
      params: z.object({ file: z.string().max(64) }),
      handler: async ({ params, res }) => {
        const file = asset(params.file);
        res.setHeader('Cache-Control', 'public, max-age=86400');
        return send(res, file, 'text/javascript; charset=utf-8');
      },
    })
    .add({
      method: 'post', path: '/streams', tag: 'streams', role: 'operator', summary: 'Create a camera stream (the RTSP URL may carry credentials; they are stored encrypted and never returned)', body: streamCreate, status: 201, errors: [409],
      handler: async ({ body }) => {
        const s = await svc.store.create(body);
        await svc.changed(s, false);
        return svc.view(s.id);
      },
    })
    .add({
      method: 'get', path: '/streams', tag: 'streams', role: 'viewer', summary: 'List streams with their status', query: z.object({ device_id: z.string().max(64).optional() }),
      returns: '`{ items }`',
      handler: ({ query }) => ({ items: svc.list().filter((s) => !query.device_id || s.device_id === query.device_id) }),
    })
    .add({
      method: 'get', path: '/streams/:id', tag: 'streams', role: 'viewer', summary: 'Read a stream: settings, status, last error, viewers, push status', params: idParam, errors: [404],
      handler: ({ params }) => svc.view(checkSlug('stream', params.id)),
    })
    .add({
      method: 'patch', path: '/streams/:id', tag: 'streams', role: 'operator', summary: 'Update a stream; a running camera process restarts with the new settings', params: idParam, errors: [404],
      body: streamPatch.refine((b) => Object.keys(b).length > 0, 'nothing to update'),
      handler: async ({ params, body }) => {
        const s = await svc.store.update(checkSlug('stream', params.id), body);
        await svc.changed(s, true);
        return svc.view(s.id);
      },
    })
    .add({
      method: 'delete', path: '/streams/:id', tag: 'streams', role: 'operator', summary: 'Delete a stream, its live files and its recordings', params: idParam, status: 204, errors: [404],
      handler: async ({ params }) => {
        await svc.store.delete(checkSlug('stream', params.id));
        await svc.removed(params.id);
      },
    })
    .add({
      method: 'post', path: '/streams/:id/start', tag: 'streams', role: 'operator', summary: 'Start the camera process and keep it running until stop', params: idParam, errors: [404],
      handler: ({ params }) => svc.startPinned(checkSlug('stream', params.id)),
    })
    .add({
      method: 'post', path: '/streams/:id/stop', tag: 'streams', role: 'operator', summary: 'Undo start: an on-demand stream stops (now, if nobody watches)', params: idParam, errors: [404],
      handler: ({ params }) => svc.stopPinned(checkSlug('stream', params.id)),
    })
    .add({
      method: 'get', path: '/streams/:id/urls', tag: 'streams', role: 'viewer', summary: 'Signed playback URLs for `<video>` tags and the player (valid `ttl_s`, default 900 s)', params: idParam, errors: [404],
      query: z.object({ ttl_s: z.coerce.number().int().min(10).max(86_400).default(900) }),
      returns: '`{ player, hls, flv, snapshot, recordings, expires_at }` (paths relative to the server)',
      handler: ({ params, query }) => {
        const id = checkSlug('stream', params.id);
        svc.view(id);
        const expires = Date.now() + query.ttl_s * 1000;
        const q = `?sig=${encodeURIComponent(svc.keys.sign(id, expires))}`;
        const base = `/api/streams/${id}`;
        return {
          player: `${base}/player${q}`,
          hls: `${base}/hls/index.m3u8${q}`,
          flv: `${base}/live.flv${q}`,
          snapshot: `${base}/snapshot.jpg${q}`,
          recordings: `${base}/recordings${q}`,
          expires_at: new Date(Math.floor(expires / 1000) * 1000).toISOString(),
        };
      },
    })
    .add({
      method: 'get', path: '/streams/:id/player', tag: 'streams', role: 'viewer', summary: 'A page that plays the stream (HLS with hls.js, `?mode=flv` with mpegts.js)', params: idParam, signed, errors: [404],
      handler: ({ params, req, res }) => {
        const id = checkSlug('stream', params.id);
        svc.view(id);
        res.setHeader('Content-Security-Policy', "default-src 'self'; script-src 'self' 'unsafe-inline'; media-src 'self' blob:; worker-src 'self' blob:; connect-src 'self'");
        res.type('html').send(playerPage(id, typeof req.query.sig === 'string' ? req.query.sig : undefined));
        return res;
      },
    })
    .add({
      method: 'get', path: '/streams/:id/hls/index.m3u8', tag: 'streams', role: 'viewer', summary: 'Live HLS playlist (starts an on-demand stream and waits for it, bounded)', params: idParam, signed, errors: [404, 504],
      handler: async ({ params, req, res }) => {
        const id = checkSlug('stream', params.id);
        const pl = await svc.waitPlaylist(id);
        const sig = sigOf(req);
        res.setHeader('Cache-Control', 'no-cache');
        res.type('application/vnd.apple.mpegurl').send(sig ? pl.replace(/^(s\d+\.ts)$/gm, `$1${sig}`) : pl);
        return res;
      },
    })
    .add({
      method: 'get', path: '/streams/:id/hls/:segment', tag: 'streams', role: 'viewer', summary: 'A live HLS segment', params: idParam.extend({ segment: z.string().max(64) }), signed, errors: [404],
      handler: async ({ params, res }) => {
        const id = checkSlug('stream', params.id);
        if (!LIVE_SEGMENT_RE.test(params.segment)) throw badName('segment');
        svc.touch(id);
        return send(res, pathInside(svc.dir(id), 'live', params.segment), 'video/mp2t');
      },
    })
    .add({
      method: 'get', path: '/streams/:id/live.flv', tag: 'streams', role: 'viewer', summary: 'Live HTTP-FLV (for mpegts.js); starts an on-demand stream', params: idParam, signed, errors: [404, 503, 504],
      handler: async ({ params, req, res }) => {
        const id = checkSlug('stream', params.id);
        if (svc.view(id).state.viewers >= MAX_FLV_VIEWERS) throw new FluxError('busy', `stream '${id}' has ${MAX_FLV_VIEWERS} viewers`, 503);
        const hub = await svc.waitLive(id);
        // A client that left during the wait would be attached for good: its 'close' has fired already and
        // a destroyed response never backs up, so it would count as a viewer (and keep the camera on) until the run ends.
        if (res.destroyed || !res.socket || res.socket.destroyed) return res;
        // checked again: requests that waited together all passed the first check
        if (svc.view(id).state.viewers >= MAX_FLV_VIEWERS) throw new FluxError('busy', `stream '${id}' has ${MAX_FLV_VIEWERS} viewers`, 503);
        res.writeHead(200, { 'Content-Type': 'video/x-flv', 'Cache-Control': 'no-store' });
        res.flushHeaders();
        const detach = hub.add(res);
        req.on('close', detach);
        res.on('close', detach);
        return res;
      },
    })
    .add({
      method: 'get', path: '/streams/:id/snapshot.jpg', tag: 'streams', role: 'viewer', summary: 'A JPEG: the latest keyframe of a running stream, or a one-shot capture (bounded by a timeout)', params: idParam, signed, errors: [404, 502, 503],
      handler: async ({ params, res }) => {
        const jpeg = await svc.snapshot(checkSlug('stream', params.id));
        res.setHeader('Cache-Control', 'no-store');
        res.type('image/jpeg').send(jpeg);
        return res;
      },
    })
    .add({
      method: 'get', path: '/streams/:id/snapshots/:file', tag: 'streams', role: 'viewer', summary: 'A snapshot a flow took (`flux stream` node), kept among the last 50', params: idParam.extend({ file: z.string().max(64) }), signed, errors: [404],
      handler: async ({ params, res }) => {
        const id = checkSlug('stream', params.id);
        if (!SNAPSHOT_RE.test(params.file)) throw badName('snapshot');
        svc.view(id);
        return send(res, pathInside(svc.dir(id), 'snap', params.file), 'image/jpeg');
      },
    })
    .add({
      method: 'get', path: '/streams/:id/recordings', tag: 'streams', role: 'viewer', summary: 'Recorded range as an HLS VOD playlist (`from`, `to`: epoch ms or ISO time; at most 24 h)', params: idParam, signed, errors: [404],
      query: z.object({ from: time, to: time.optional(), sig: z.string().optional() }),
      handler: ({ params, query, req, res }) => {
        const id = checkSlug('stream', params.id);
        svc.view(id);
        const to = query.to ?? Date.now();
        if (!(to > query.from)) throw new FluxError('bad_request', '`to` must be after `from`', 400);
        if (to - query.from > 86_400_000) throw new FluxError('bad_request', 'the range is longer than 24 h', 400);
        const sig = sigOf(req);
        const { playlist } = vodPlaylist(listSegments(svc.dir(id), id, { from: query.from, to }), query.from, to, (name) => `rec/${name}${sig}`);
        res.setHeader('Cache-Control', 'no-cache');
        res.type('application/vnd.apple.mpegurl').send(playlist);
        return res;
      },
    })
    .add({
      method: 'get', path: '/streams/:id/rec/:segment', tag: 'streams', role: 'viewer', summary: 'A recorded segment', params: idParam.extend({ segment: z.string().max(64) }), signed, errors: [404],
      handler: async ({ params, res }) => {
        const id = checkSlug('stream', params.id);
        if (!SEGMENT_RE.test(params.segment)) throw badName('segment');
        svc.view(id);
        return send(res, pathInside(svc.dir(id), 'rec', params.segment), 'video/mp2t');
      },
    });
}
