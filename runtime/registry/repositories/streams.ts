/**
 * The streams repository: camera streams as runtime/stream/store.ts keeps them (the URLs shown
 * without credentials, the full ones only in the encrypted `secrets`). test/registry/streams.test.ts
 * runs it on SQLite, MariaDB and PostgreSQL.
 */
import { UniqueConstraintError, type Model } from 'sequelize';
import { conflict, notFound } from '../../errors/index.ts';
import { iso, type Db } from '../rows.ts';

export interface StreamRow {
  id: string;
  name: string;
  /** the RTSP URL without its credentials */
  url: string;
  /** the full RTSP and RTMP URLs, encrypted by the stream module */
  secrets: string;
  device_id: string | null;
  on_demand: boolean;
  record: boolean;
  retention_hours: number;
  transcode: string;
  audio: string;
  /** the push targets without credentials or stream keys */
  rtmp_push: string[];
  tags: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}

export type StreamColumns = Omit<StreamRow, 'id' | 'created_at' | 'updated_at'>;

export interface StreamRepository {
  /** 409 when the id is taken */
  create(row: StreamColumns & { id: string }): Promise<StreamRow>;
  find(id: string): Promise<StreamRow | null>;
  /** by id, at most `limit` */
  list(filter: { device_id?: string }, limit: number): Promise<StreamRow[]>;
  /** 404 when gone */
  update(id: string, patch: Partial<StreamColumns>): Promise<StreamRow>;
  /** 404 when gone */
  delete(id: string): Promise<void>;
}

function toRow(m: Model): StreamRow {
  const o = m.get({ plain: true }) as Record<string, unknown>;
  return {
    id: String(o.id),
    name: String(o.name),
    url: String(o.url),
    secrets: String(o.secrets ?? ''),
    device_id: (o.device_id as string | null) ?? null,
    on_demand: Boolean(o.on_demand),
    record: Boolean(o.record),
    retention_hours: Number(o.retention_hours),
    transcode: String(o.transcode),
    audio: String(o.audio),
    rtmp_push: o.rtmp_push as string[],
    tags: o.tags as Record<string, unknown>,
    created_at: iso(o.created_at)!,
    updated_at: iso(o.updated_at)!,
  };
}

export function createStreamRepository(db: Db): StreamRepository {
  const { Stream } = db.models;
  const byId = async (id: string) => {
    const m = await Stream.findByPk(id);
    if (!m) throw notFound('stream', id);
    return m;
  };
  return {
    async create(row) {
      try {
        return toRow(await Stream.create(row));
      } catch (err) {
        if (err instanceof UniqueConstraintError) throw conflict(`stream '${row.id}' already exists`);
        throw err;
      }
    },
    async find(id) {
      const m = await Stream.findByPk(id);
      return m ? toRow(m) : null;
    },
    async list(filter, limit) {
      const rows = await Stream.findAll({ where: filter.device_id ? { device_id: filter.device_id } : {}, order: [['id', 'ASC']], limit });
      return rows.map(toRow);
    },
    async update(id, patch) {
      const m = await byId(id);
      await m.update(patch);
      return toRow(m);
    },
    async delete(id) {
      const m = await byId(id);
      await m.destroy();
    },
  };
}
