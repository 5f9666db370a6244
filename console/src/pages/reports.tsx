/** Reports: telemetry of chosen devices and metrics over a range, as a chart and a table, and a CSV download. */
import { useState } from 'preact/hooks';
import { blob, get, qs } from '../api.ts';
import { fmtNumber, fmtTime, t, useLang } from '../i18n.ts';
import { Chart, toSeries } from '../chart.tsx';
import { Card, ErrorBox, act, useAsync } from '../ui.tsx';
import type { Device } from './devices.tsx';

interface Row {
  device: string;
  metric: string;
  ts: number;
  [k: string]: unknown;
}

const local = (ms: number) => new Date(ms - new Date(ms).getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
const MAX_DEVICES = 20;

export function Reports() {
  useLang();
  const [search, setSearch] = useState('');
  const [chosen, setChosen] = useState<string[]>([]);
  const [metrics, setMetrics] = useState('');
  const [from, setFrom] = useState(local(Date.now() - 24 * 3600_000));
  const [to, setTo] = useState(local(Date.now() + 60_000));
  const [interval, setInterval_] = useState('');
  const [agg, setAgg] = useState('avg');
  const [rows, setRows] = useState<Row[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const found = useAsync((s) => get<{ items: Device[]; total: number }>(`/devices${qs({ q: search, limit: 20 })}`, s), [search]);
  const params = () => ({ metric: metrics.replace(/\s+/g, ''), from: new Date(from).toISOString(), to: new Date(to).toISOString(), ...(interval ? { interval, agg } : {}) });
  const field = interval ? agg : 'value';

  async function run(e: Event) {
    e.preventDefault();
    setError(null);
    try {
      const out: Row[] = [];
      for (const d of chosen) {
        const r = await get<{ items: Omit<Row, 'device'>[] }>(`/devices/${encodeURIComponent(d)}/telemetry${qs({ ...params(), limit: 10000 })}`);
        for (const it of r.items) out.push({ ...it, device: d } as Row);
      }
      out.sort((a, b) => a.ts - b.ts || a.device.localeCompare(b.device) || a.metric.localeCompare(b.metric));
      setRows(out);
    } catch (err) {
      setError(err);
    }
  }

  /** One CSV of every chosen device (the API answers one device per request; the header is kept once). */
  async function downloadCsv() {
    await act(async () => {
      let text = '';
      for (const [i, d] of chosen.entries()) {
        const part = await (await blob(`/reports/telemetry.csv${qs({ ...params(), device: d })}`)).text();
        text += i === 0 ? part : part.slice(part.indexOf('\n') + 1);
      }
      const a = document.createElement('a');
      a.href = URL.createObjectURL(new Blob([text], { type: 'text/csv;charset=utf-8' }));
      a.download = `telemetry-${chosen.length === 1 ? chosen[0]!.replace(/[^A-Za-z0-9_.-]/g, '_') : `${chosen.length}-devices`}.csv`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
    });
  }

  const series = rows ? toSeries(rows.filter((r) => typeof r[field] === 'number'), field, (it) => `${(it as Row).device} · ${it.metric}`) : null;
  return (
    <div class="page">
      <h1>{t('Reports')}</h1>
      <form onSubmit={run} class="form">
        <Card title={t('Devices ({n} of at most {max})', { n: chosen.length, max: MAX_DEVICES })}>
          <div class="inline-form">
            <input type="search" aria-label={t('Search devices')} placeholder={t('Search devices')} value={search} onInput={(e) => setSearch(e.currentTarget.value)} />
          </div>
          <div class="chips">
            {chosen.map((d) => (
              <button type="button" key={d} class="chip" onClick={() => setChosen(chosen.filter((x) => x !== d))}>
                {d} ×
              </button>
            ))}
          </div>
          <ErrorBox error={found.error} />
          <div class="choices">
            {found.data?.items
              .filter((d) => !chosen.includes(d.id))
              .map((d) => (
                <button type="button" key={d.id} class="small" disabled={chosen.length >= MAX_DEVICES} onClick={() => setChosen([...chosen, d.id])}>
                  + {d.id}
                </button>
              ))}
          </div>
        </Card>
        <Card title={t('Range and metrics')}>
          <div class="inline-form">
            <label>
              {t('From')}
              <input type="datetime-local" value={from} onInput={(e) => setFrom(e.currentTarget.value)} required />
            </label>
            <label>
              {t('To')}
              <input type="datetime-local" value={to} onInput={(e) => setTo(e.currentTarget.value)} required />
            </label>
            <label>
              {t('Metrics (comma-separated, empty: all)')}
              <input value={metrics} onInput={(e) => setMetrics(e.currentTarget.value)} placeholder="temperature,humidity" />
            </label>
            <label>
              {t('Interval')}
              <select value={interval} onChange={(e) => setInterval_(e.currentTarget.value)}>
                <option value="">{t('raw values')}</option>
                {['1m', '5m', '15m', '1h', '1d'].map((i) => (
                  <option key={i} value={i}>
                    {i}
                  </option>
                ))}
              </select>
            </label>
            {interval && (
              <label>
                {t('Aggregate')}
                <select value={agg} onChange={(e) => setAgg(e.currentTarget.value)}>
                  {['avg', 'min', 'max', 'sum', 'count', 'first', 'last'].map((a) => (
                    <option key={a}>{a}</option>
                  ))}
                </select>
              </label>
            )}
          </div>
          <div class="buttons">
            <button type="submit" class="primary" disabled={!chosen.length}>
              {t('Show')}
            </button>
            <button type="button" disabled={!chosen.length} onClick={downloadCsv} data-testid="csv">
              {t('Download CSV')}
            </button>
          </div>
        </Card>
      </form>
      <ErrorBox error={error} />
      {rows && (
        <Card title={t('{n} rows', { n: rows.length })}>
          {series && series.labels.length > 0 && <Chart labels={series.labels} data={series.data} />}
          <div class="scroll">
            <table class="grid" data-testid="report-table">
              <thead>
                <tr>
                  <th>{t('Time')}</th>
                  <th>{t('Device')}</th>
                  <th>{t('Metric')}</th>
                  <th class="num">{interval ? agg : t('Value')}</th>
                </tr>
              </thead>
              <tbody>
                {rows.slice(0, 500).map((r, i) => (
                  <tr key={i}>
                    <td class="nowrap">{fmtTime(r.ts)}</td>
                    <td>{r.device}</td>
                    <td>{r.metric}</td>
                    <td class="num">{fmtNumber(r[field])}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {rows.length > 500 && <p class="hint">{t('The first 500 rows are shown; the CSV has them all.')}</p>}
          </div>
        </Card>
      )}
    </div>
  );
}
