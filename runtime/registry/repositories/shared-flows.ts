/**
 * The flows a cluster's nodes share (migration 012): one row holding the Node-RED flow JSON and its
 * revision (sha256 of that JSON, as Node-RED computes it), and their credentials as Node-RED
 * encrypted them (migration 013). runtime/flow-engine/shared-flows.ts
 * reads and writes it in cluster mode.
 */
import { QueryTypes } from 'sequelize';
import type { Db } from '../rows.ts';

export interface SharedFlowRepository {
  /** the stored flow JSON and its revision; null until a node stored them */
  read(): Promise<{ json: string; rev: string } | null>;
  /**
   * A deploy's compare-and-set: writes the flows (and the credentials, when given) only while the row
   * still holds `expected` (the revision and credentials document the deploying node loaded); false:
   * another node's deploy came first.
   */
  writeIf(expected: { rev: string; credentials: string | null }, json: string, rev: string, credentials?: string): Promise<boolean>;
  /** writes only while none are stored (the first node of a cluster); false: another node's came first */
  writeFirst(json: string, rev: string): Promise<boolean>;
  /** Node-RED's encrypted credentials document (JSON); null until a node stored them */
  readCredentials(): Promise<string | null>;
  /** writes the credentials only while none are stored and the flows are at `rev` (the first node's own, with its flows); false: not written */
  writeFirstCredentials(json: string, rev: string): Promise<boolean>;
}

export function createSharedFlowRepository(db: Db): SharedFlowRepository {
  const q = (n: string) => db.sequelize.getQueryInterface().quoteIdentifier(n);
  const read = async () => {
    const rows = await db.sequelize.query<{ flows: string | null; rev: string | null }>(`SELECT ${q('flows')}, ${q('rev')} FROM ${q('shared_flows')} WHERE ${q('id')} = 'flows'`, { type: QueryTypes.SELECT });
    const r = rows[0];
    return r?.flows && r.rev ? { json: r.flows, rev: r.rev } : null;
  };
  const readCredentials = async () => {
    const rows = await db.sequelize.query<{ credentials: string | null }>(`SELECT ${q('credentials')} FROM ${q('shared_flows')} WHERE ${q('id')} = 'flows'`, { type: QueryTypes.SELECT });
    return rows[0]?.credentials ?? null;
  };
  return {
    read,
    async writeIf(expected, json, rev, credentials) {
      // one conditional statement, so two deploys on two nodes at the same moment cannot both pass;
      // the credentials are compared too, since a deploy that changes only them keeps the revision
      const setCredentials = credentials === undefined ? '' : `, ${q('credentials')} = :credentials`;
      const sameCredentials = expected.credentials === null ? `${q('credentials')} IS NULL` : `${q('credentials')} = :expectedCredentials`;
      const [, changed] = await db.sequelize.query(
        `UPDATE ${q('shared_flows')} SET ${q('flows')} = :json, ${q('rev')} = :rev${setCredentials}, ${q('updated_at')} = :at WHERE ${q('id')} = 'flows' AND ${q('rev')} = :expectedRev AND ${sameCredentials}`,
        { replacements: { json, rev, credentials: credentials ?? null, at: new Date(), expectedRev: expected.rev, expectedCredentials: expected.credentials }, type: QueryTypes.UPDATE },
      );
      if (Number(changed) > 0) return true;
      // MariaDB counts only rows whose values changed: a deploy of what is stored already (within
      // the same second of updated_at) changes none, and is no conflict
      const now = await read();
      return now?.rev === rev && now.json === json && (credentials === undefined || (await readCredentials()) === credentials);
    },
    async writeFirst(json, rev) {
      // one conditional statement: of several nodes starting at once, one writes
      await db.sequelize.query(`UPDATE ${q('shared_flows')} SET ${q('flows')} = :json, ${q('rev')} = :rev, ${q('updated_at')} = :at WHERE ${q('id')} = 'flows' AND ${q('flows')} IS NULL`, { replacements: { json, rev, at: new Date() } });
      return (await read())?.rev === rev;
    },
    readCredentials,
    async writeFirstCredentials(json, rev) {
      await db.sequelize.query(`UPDATE ${q('shared_flows')} SET ${q('credentials')} = :json, ${q('updated_at')} = :at WHERE ${q('id')} = 'flows' AND ${q('credentials')} IS NULL AND ${q('rev')} = :rev`, { replacements: { json, rev, at: new Date() } });
      return (await readCredentials()) === json;
    },
  };
}
