/** Streams in the registry: validation, redaction of credentials, CRUD through the streams repository. */
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { DeviceRepository, StreamColumns, StreamRepository, StreamRow } from '../registry/index.ts';
import { FluxError, notFound, unknownReference } from '../errors/index.ts';
import { checkSlug } from '../safe-id/index.ts';
import type { StreamKeys } from './secrets.ts';

export const TRANSCODES = ['copy', 'h264'] as const;
export const AUDIO_MODES = ['copy', 'aac', 'off'] as const;
export const MAX_PUSHES = 8;

export interface Stream {
  id: string;
  name: string;
  /** the RTSP URL without user and password */
  url: string;
  has_credentials: boolean;
  device_id: string | null;
  on_demand: boolean;
  record: boolean;
  retention_hours: number;
  transcode: (typeof TRANSCODES)[number];
  audio: (typeof AUDIO_MODES)[number];
  /** push targets with credentials, query and stream key (last path segment) masked */
  rtmp_push: string[];
  tags: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}

/** What only the supervisor sees: the URLs in clear. */
export interface StreamSource {
  url: string;
  rtmp_push: string[];
}

const urlOf = (schemes: string[], what: string) =>
  z
    .string()
    .max(2000)
    .refine((s) => {
      try {
        const u = new URL(s);
        // `new URL` drops leading and trailing control characters, ffmpeg does not: '\x01rtsp://…' passes
        // the parser yet is a local file path to ffmpeg (no scheme), and the URL is stored as sent
        return schemes.includes(u.protocol) && u.hostname !== '' && !/[\s\p{Cc}]/u.test(s);
      } catch {
        return false;
      }
    }, `must be an ${what} URL (${schemes.map((x) => x + '//').join(' or ')}host…)`);

export const rtspUrl = urlOf(['rtsp:', 'rtsps:'], 'RTSP');
export const rtmpUrl = urlOf(['rtmp:', 'rtmps:'], 'RTMP');

export const streamCreate = z
  .object({
    id: z.string().max(64).optional(),
    name: z.string().min(1).max(200).optional(),
    url: rtspUrl,
    device_id: z.string().min(1).max(64).nullable().optional(),
    on_demand: z.boolean().default(true),
    record: z.boolean().default(false),
    retention_hours: z.number().int().min(1).max(24 * 365).default(24),
    transcode: z.enum(TRANSCODES).default('copy'),
    audio: z.enum(AUDIO_MODES).default('copy'),
    rtmp_push: z.array(rtmpUrl).max(MAX_PUSHES).default([]),
    tags: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

export const streamPatch = z
  .object({
    name: z.string().min(1).max(200),
    url: rtspUrl,
    device_id: z.string().min(1).max(64).nullable(),
    on_demand: z.boolean(),
    record: z.boolean(),
    retention_hours: z.number().int().min(1).max(24 * 365),
    transcode: z.enum(TRANSCODES),
    audio: z.enum(AUDIO_MODES),
    rtmp_push: z.array(rtmpUrl).max(MAX_PUSHES),
    tags: z.record(z.string(), z.unknown()),
  })
  .partial()
  .strict();

export type StreamCreate = z.input<typeof streamCreate>;
export type StreamPatch = z.infer<typeof streamPatch>;

export function redactRtsp(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  return u.toString();
}

export function redactRtmp(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  u.search = '';
  const parts = u.pathname.split('/');
  if (parts.filter(Boolean).length >= 2) parts[parts.length - 1] = '***';
  u.pathname = parts.join('/');
  return u.toString().replace('%2A%2A%2A', '***');
}

/**
 * ffmpeg's error text without credentials: it names its input or output as given (`rtsp://user:pass@…: …`,
 * an RTMP target with its stream key), and that text becomes `last_error`, which viewers read. `clear`
 * is shown as `shown`; any other URL (a redirect target) loses its user info.
 */
export function hideCredentials(text: string, clear: string | undefined, shown: string): string {
  const out = clear ? text.split(clear).join(shown) : text;
  return out.replace(/([a-z][a-z0-9+.-]*:\/\/)[^\s/@]*@/gi, '$1');
}

export interface StreamStore {
  create(input: StreamCreate): Promise<Stream>;
  get(id: string): Promise<Stream>;
  find(id: string): Promise<Stream | null>;
  list(filter?: { device_id?: string }): Promise<Stream[]>;
  update(id: string, patch: StreamPatch): Promise<Stream>;
  delete(id: string): Promise<void>;
  /** the clear URLs; throws when the key in the data dir cannot open them */
  source(id: string): Promise<StreamSource>;
}

/**
 * The most streams there may be: a listing answers this many, and FLUX loads (and runs) the streams of
 * a listing at start, so a stream past it would exist in the database yet be 404 after a restart.
 */
export const MAX_STREAMS = 10_000;

export function createStreamStore(repository: StreamRepository, devices: Pick<DeviceRepository, 'find'>, keys: StreamKeys, maxStreams = MAX_STREAMS): StreamStore {
  const toStream = (r: StreamRow): Stream => {
    let hasCredentials = false;
    try {
      const u = new URL((JSON.parse(keys.decrypt(r.secrets)) as StreamSource).url);
      hasCredentials = u.username !== '' || u.password !== '';
    } catch {
      /* unreadable secrets: shown as no credentials; the supervisor reports the error */
    }
    return {
      id: r.id,
      name: r.name,
      url: r.url,
      has_credentials: hasCredentials,
      device_id: r.device_id,
      on_demand: r.on_demand,
      record: r.record,
      retention_hours: r.retention_hours,
      transcode: r.transcode as Stream['transcode'],
      audio: r.audio as Stream['audio'],
      rtmp_push: r.rtmp_push,
      tags: r.tags,
      created_at: r.created_at,
      updated_at: r.updated_at,
    };
  };
  const seal = (src: StreamSource) => ({
    url: redactRtsp(src.url),
    rtmp_push: src.rtmp_push.map(redactRtmp),
    secrets: keys.encrypt(JSON.stringify(src)),
  });
  const row = async (id: string) => {
    const r = await repository.find(checkSlug('stream', id));
    if (!r) throw notFound('stream', id);
    return r;
  };
  const deviceExists = async (id: string) => {
    if (!(await devices.find(id))) throw unknownReference('body.device_id', 'device', id);
  };
  return {
    async create(raw) {
      const input = streamCreate.parse(raw);
      if (input.device_id) await deviceExists(input.device_id);
      const id = checkSlug('stream', input.id ?? `cam-${randomBytes(4).toString('hex')}`);
      if ((await repository.list({}, maxStreams)).length >= maxStreams) throw new FluxError('too_many', `there are ${maxStreams} streams already (the most FLUX keeps); delete one first`, 409);
      const r = await repository.create({
        id,
        name: input.name ?? id,
        device_id: input.device_id ?? null,
        on_demand: input.on_demand,
        record: input.record,
        retention_hours: input.retention_hours,
        transcode: input.transcode,
        audio: input.audio,
        tags: input.tags,
        ...seal({ url: input.url, rtmp_push: input.rtmp_push }),
      });
      return toStream(r);
    },
    async get(id) {
      return toStream(await row(id));
    },
    async find(id) {
      const r = await repository.find(id);
      return r ? toStream(r) : null;
    },
    async list(filter = {}) {
      return (await repository.list({ device_id: filter.device_id }, maxStreams)).map(toStream);
    },
    async update(id, patch) {
      const m = await row(id);
      if (patch.device_id) await deviceExists(patch.device_id);
      const { url, rtmp_push, ...plain } = patch;
      const values: Partial<StreamColumns> = { ...plain };
      if (url !== undefined || rtmp_push !== undefined) {
        let old: StreamSource = { url: url ?? '', rtmp_push: [] };
        try {
          old = JSON.parse(keys.decrypt(m.secrets)) as StreamSource;
        } catch {
          // a key that changed: the new URL replaces what nobody can read any more
          if (url === undefined) throw new FluxError('undecryptable', 'the stored camera URL cannot be decrypted with stream.key; send `url` again', 409);
        }
        Object.assign(values, seal({ url: url ?? old.url, rtmp_push: rtmp_push ?? old.rtmp_push }));
      }
      return toStream(await repository.update(m.id, values));
    },
    async delete(id) {
      await repository.delete(checkSlug('stream', id));
    },
    async source(id) {
      const m = await row(id);
      try {
        return JSON.parse(keys.decrypt(m.secrets)) as StreamSource;
      } catch {
        throw new Error('the camera URL cannot be decrypted: stream.key in the data dir is not the key it was stored with');
      }
    },
  };
}
