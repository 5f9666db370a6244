/**
 * 010: at most one open alarm per rule and device, kept by the database rather than by one process:
 * `alarms.open_key` is `<rule id>/<device id>` while the alarm is active or acknowledged and NULL
 * once it is cleared, under a unique index (every dialect lets NULLs repeat). Two processes raising
 * the same alarm at once (runtime/registry/repositories/alarms.ts) then cannot open two rows.
 * Open alarms of before get their key, the newest of each pair only; older duplicates (possible when
 * two processes shared a database) stay as they are, without one.
 */
import { DataTypes, QueryTypes, type QueryInterface } from 'sequelize';

export const m010AlarmOpenKey = {
  name: '010-alarm-open-key',
  async up(qi: QueryInterface): Promise<void> {
    await qi.addColumn('alarms', 'open_key', { type: DataTypes.STRING(128), allowNull: true });
    const q = (n: string) => qi.quoteIdentifier(n);
    const open = await qi.sequelize.query<{ id: string; rule_id: string | null; device_id: string | null }>(
      `SELECT ${q('id')}, ${q('rule_id')}, ${q('device_id')} FROM ${q('alarms')} WHERE ${q('state')} IN ('active', 'acknowledged') ORDER BY ${q('first_at')} DESC`,
      { type: QueryTypes.SELECT },
    );
    const keyed = new Set<string>();
    for (const a of open) {
      const key = `${a.rule_id ?? ''}/${a.device_id ?? ''}`;
      if (keyed.has(key)) continue;
      keyed.add(key);
      await qi.sequelize.query(`UPDATE ${q('alarms')} SET ${q('open_key')} = ? WHERE ${q('id')} = ?`, { replacements: [key, a.id] });
    }
    await qi.addIndex('alarms', ['open_key'], { name: 'alarms_open_key', unique: true });
  },
  async down(qi: QueryInterface): Promise<void> {
    await qi.removeIndex('alarms', 'alarms_open_key');
    await qi.removeColumn('alarms', 'open_key');
  },
};
