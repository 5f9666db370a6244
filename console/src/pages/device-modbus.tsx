/** The device page's Modbus card: where FLUX polls the device, whether it answers, and its product's register map. */
import { get } from '../api.ts';
import { fmtNumber, fmtTime, t } from '../i18n.ts';
import { Card, ErrorBox, Status, useAsync, useInterval } from '../ui.tsx';
import type { Device } from './devices.tsx';
import type { UnitStatus } from '../../../runtime/api-shapes/index.ts';

interface Register {
  property: string;
  function: number;
  address: number;
  type?: string;
  word_order?: string;
  byte_order?: string;
  scale?: number;
  offset?: number;
}
export interface ProductModbus {
  interval_ms: number;
  timeout_ms: number;
  offline_after: number;
  registers: Register[];
}
interface ModbusStatus {
  endpoints: { endpoint: string; connected: boolean; units: UnitStatus[] }[];
}

const functionName = (fn: number) => ({ 1: t('coil'), 2: t('discrete input'), 3: t('holding register'), 4: t('input register') })[fn] ?? String(fn);

export function ModbusPanel(p: { device: Device; map: ProductModbus }) {
  const status = useAsync((s) => get<ModbusStatus>('/modbus', s), [p.device.id]);
  useInterval(status.reload, 5000);
  let endpoint: string | undefined;
  let unit: UnitStatus | undefined;
  for (const e of status.data?.endpoints ?? []) {
    const u = e.units.find((x) => x.device_id === p.device.id);
    if (u) [endpoint, unit] = [e.endpoint, u];
  }
  return (
    <Card title={t('Modbus polling')} id="modbus">
      <ErrorBox error={status.error} />
      <dl class="facts" data-testid="modbus-status">
        <dt>{t('Endpoint')}</dt>
        <dd>
          <code>{endpoint ?? '—'}</code> {unit && t('unit {unit}', { unit: unit.unit })}
        </dd>
        <dt>{t('Interval')}</dt>
        <dd>{t('every {ms} ms, timeout {timeout} ms', { ms: p.map.interval_ms, timeout: p.map.timeout_ms })}</dd>
        <dt>{t('Answers')}</dt>
        <dd>{unit ? <Status status={unit.online ? 'online' : 'offline'} /> : t('not polled')}</dd>
        {unit && (
          <>
            <dt>{t('Last answer')}</dt>
            <dd>{fmtTime(unit.last_ok)}</dd>
            <dt>{t('Failures in a row')}</dt>
            <dd>{fmtNumber(unit.consecutive_failures)}</dd>
            {unit.last_error && (
              <>
                <dt>{t('Last error')}</dt>
                <dd>{unit.last_error}</dd>
              </>
            )}
          </>
        )}
      </dl>
      <table class="grid" data-testid="modbus-registers">
        <thead>
          <tr>
            <th>{t('Property')}</th>
            <th>{t('Register')}</th>
            <th>{t('Type')}</th>
            <th>{t('Scale')}</th>
          </tr>
        </thead>
        <tbody>
          {p.map.registers.map((r) => (
            <tr key={r.property}>
              <td>{r.property}</td>
              <td>
                {functionName(r.function)} {r.address}
              </td>
              <td>
                {r.type ?? (r.function <= 2 ? 'bool' : 'uint16')}
                {r.word_order === 'little' ? ' CDAB' : ''}
                {r.byte_order === 'little' ? ' BADC' : ''}
              </td>
              <td class="num">
                {r.scale ?? 1}
                {r.offset ? ` + ${r.offset}` : ''}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Card>
  );
}
