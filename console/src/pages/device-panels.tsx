/** Panels of the device page: history chart, command sender, trace, sub-devices. */
import { useState } from 'preact/hooks';
import { get, post, qs } from '../api.ts';
import { fmtTime, fmtNumber, t } from '../i18n.ts';
import { Chart, toSeries } from '../chart.tsx';
import { Card, ErrorBox, Json, Link, Status, act, useAsync } from '../ui.tsx';
import type { Device } from './devices.tsx';

const RANGES: [string, number, string][] = [
  ['last hour', 3600_000, '1m'],
  ['last 6 hours', 6 * 3600_000, '5m'],
  ['last 24 hours', 24 * 3600_000, '15m'],
  ['last 7 days', 7 * 24 * 3600_000, '1h'],
  ['last 30 days', 30 * 24 * 3600_000, '6h'],
];
export const AGGS = ['raw', 'avg', 'min', 'max', 'sum', 'count', 'last'];

export function History(p: { device: string }) {
  const [range, setRange] = useState(0);
  const [agg, setAgg] = useState('avg');
  const [r, span, interval] = RANGES[range]!;
  void r;
  const data = useAsync(
    (s) => {
      const to = Date.now();
      return get<{ items: { metric: string; ts: number; [k: string]: unknown }[] }>(
        `/devices/${encodeURIComponent(p.device)}/telemetry${qs({ from: to - span, to, ...(agg === 'raw' ? { limit: 10000 } : { interval, agg }) })}`,
        s,
      );
    },
    [p.device, range, agg],
  );
  const series = data.data ? toSeries(data.data.items.filter((i) => typeof (agg === 'raw' ? i.value : i[agg]) === 'number'), agg === 'raw' ? 'value' : agg) : null;
  return (
    <Card
      title={t('History')}
      actions={
        <>
          <select aria-label={t('Range')} value={range} onChange={(e) => setRange(Number(e.currentTarget.value))}>
            {RANGES.map(([label], i) => (
              <option key={i} value={i}>
                {t(label)}
              </option>
            ))}
          </select>
          <select aria-label={t('Aggregate')} value={agg} onChange={(e) => setAgg(e.currentTarget.value)}>
            {AGGS.map((a) => (
              <option key={a} value={a}>
                {a === 'raw' ? t('raw values') : `${a} / ${interval}`}
              </option>
            ))}
          </select>
        </>
      }
    >
      <ErrorBox error={data.error} />
      {series && series.labels.length > 0 ? <Chart labels={series.labels} data={series.data} /> : <p class="hint">{t('No stored telemetry in this range.')}</p>}
    </Card>
  );
}

export function CommandSender(p: { device: Device; commands: { id: string; name?: string }[] }) {
  const [result, setResult] = useState<unknown>(null);
  async function submit(e: Event) {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    let params: unknown = {};
    try {
      params = JSON.parse(String(f.get('params') || '{}'));
    } catch {
      setResult({ error: t('Parameters are not valid JSON') });
      return;
    }
    const r = await act(() => post(`/devices/${encodeURIComponent(p.device.id)}/commands`, { command: String(f.get('command')), params }));
    setResult(r ?? null);
  }
  return (
    <Card title={t('Send a command')}>
      <form class="form inline-form" onSubmit={submit}>
        <label>
          {t('Command')}
          <input name="command" list="device-commands" required />
          <datalist id="device-commands">
            {p.commands.map((c) => (
              <option key={c.id} value={c.id}>
                {c.name ?? c.id}
              </option>
            ))}
          </datalist>
        </label>
        <label class="grow">
          {t('Parameters (JSON)')}
          <input name="params" defaultValue="{}" />
        </label>
        <button type="submit" class="primary">
          {t('Send')}
        </button>
      </form>
      {result !== null && <Json value={result} />}
    </Card>
  );
}

interface Trace {
  id: string;
  received_at: number | string;
  spans: { stage: string; at: number; took_ms: number; ok: boolean; detail?: unknown; error?: string }[];
}

export function TracePanel(p: { device: string }) {
  const traces = useAsync((s) => get<{ items: Trace[] }>(`/devices/${encodeURIComponent(p.device)}/trace?last=20`, s), [p.device]);
  const [open, setOpen] = useState<string | null>(null);
  return (
    <Card title={t('Trace')} actions={<button type="button" onClick={traces.reload}>{t('Refresh')}</button>}>
      <ErrorBox error={traces.error} />
      {traces.data?.items.length === 0 && <p class="hint">{t('No messages traced yet.')}</p>}
      <table class="grid">
        <tbody>
          {traces.data?.items.map((tr) => (
            <>
              <tr key={tr.id} class="clickable" onClick={() => setOpen(open === tr.id ? null : tr.id)}>
                <td class="nowrap">{fmtTime(tr.received_at)}</td>
                <td>
                  {tr.spans.map((s) => (
                    <span key={s.stage} class={`span ${s.ok ? 'ok' : 'bad'}`} title={s.error ?? ''}>
                      {s.stage} {fmtNumber(s.took_ms)} ms
                    </span>
                  ))}
                </td>
              </tr>
              {open === tr.id && (
                <tr key={`${tr.id}-d`}>
                  <td colSpan={2}>
                    <Json value={tr} />
                  </td>
                </tr>
              )}
            </>
          ))}
        </tbody>
      </table>
    </Card>
  );
}

export function SubDevices(p: { gateway: string }) {
  const list = useAsync((s) => get<{ items: Device[]; total: number }>(`/devices/${encodeURIComponent(p.gateway)}/children${qs({ limit: 200 })}`, s), [p.gateway]);
  const subs = list.data?.items;
  return (
    <Card title={t('Sub-devices')}>
      <ErrorBox error={list.error} />
      {subs && subs.length === 0 && <p class="hint">{t('No sub-devices.')}</p>}
      <table class="grid">
        <tbody>
          {subs?.map((d) => (
            <tr key={d.id}>
              <td>
                <Link to={`devices/${encodeURIComponent(d.id)}`}>{d.id}</Link>
              </td>
              <td>{d.name}</td>
              <td>
                <Status status={d.status} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Card>
  );
}
