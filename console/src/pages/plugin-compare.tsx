/**
 * The plugin page's comparisons of a stored version with the active one (runtime/plugin-compare):
 * a replay over the recorded uplinks (POST /api/plugins/{id}/replay, followed by GET while it runs)
 * and shadow mode on live traffic (/api/plugins/{id}/shadow), with their diffs side by side.
 */
import { useEffect, useState } from 'preact/hooks';
import { api, del, get, getOptional, post } from '../api.ts';
import { fmtTime, t } from '../i18n.ts';
import { Card, ErrorBox, Json, act, useInterval, useRole } from '../ui.tsx';
import { TraceOf } from './raw-frames.tsx';

type Side = { output: unknown } | { output_preview: string; bytes: number } | { error: { cause: string; message: string } };
interface Diff {
  msgId: string | null;
  deviceId: string | null;
  ts: number | null;
  before: Side;
  after: Side;
}
interface Counts {
  same: number;
  different: number;
  failed: number;
  diffs: Diff[];
}
interface Replay extends Counts {
  version: number;
  active_version: number;
  state: 'running' | 'done' | 'cancelled' | 'failed';
  total: number;
  truncated: boolean;
  started_at: string;
  took_ms: number;
  error?: { code: string; message: string };
}
interface Shadow extends Counts {
  version: number;
  active_version: number;
  sample: number;
  started_at: string;
  dropped: number;
  queued: number;
}

function SideView(p: { side: Side }) {
  const s = p.side;
  if ('error' in s) {
    return (
      <div class="error" role="note">
        {s.error.cause}: {s.error.message}
      </div>
    );
  }
  if ('output_preview' in s) {
    return (
      <>
        <p class="hint">{t('{bytes} bytes, the first ones:', { bytes: s.bytes })}</p>
        <pre class="json">{s.output_preview}</pre>
      </>
    );
  }
  return <Json value={s.output} />;
}

/** Diffs: message (its trace on a click), device, time, and the active version's output beside the compared one's. */
export function DiffList(p: { diffs: Diff[]; active: number; version: number; testid: string }) {
  const [open, setOpen] = useState<string | null>(null);
  if (p.diffs.length === 0) return null;
  return (
    <table class="grid diffs" data-testid={p.testid}>
      <thead>
        <tr>
          <th>{t('Message')}</th>
          <th>{t('Before (active v{v})', { v: p.active })}</th>
          <th>{t('After (v{v})', { v: p.version })}</th>
        </tr>
      </thead>
      <tbody>
        {p.diffs.map((d, i) => (
          <>
            <tr key={`${d.msgId ?? ''}-${i}`} class="diff">
              <td class="nowrap">
                {d.msgId ? (
                  <button type="button" class="link mono" onClick={() => setOpen(open === d.msgId ? null : d.msgId)}>
                    {d.msgId}
                  </button>
                ) : (
                  '—'
                )}
                <div>{d.deviceId ?? '—'}</div>
                <div class="hint">{fmtTime(d.ts)}</div>
              </td>
              <td class="output">
                <SideView side={d.before} />
              </td>
              <td class="output">
                <SideView side={d.after} />
              </td>
            </tr>
            {d.msgId && open === d.msgId && (
              <tr key={`${d.msgId}-${i}-trace`}>
                <td colSpan={3}>
                  <TraceOf msgId={d.msgId} />
                </td>
              </tr>
            )}
          </>
        ))}
      </tbody>
    </table>
  );
}

function CountsView(p: { c: Counts & { total?: number; dropped?: number }; testid: string }) {
  return (
    <dl class="facts counts" data-testid={p.testid}>
      {p.c.total !== undefined && (
        <>
          <dt>{t('Total')}</dt>
          <dd data-count="total">{p.c.total}</dd>
        </>
      )}
      <dt>{t('Same')}</dt>
      <dd data-count="same">{p.c.same}</dd>
      <dt>{t('Different')}</dt>
      <dd data-count="different">{p.c.different}</dd>
      <dt>{t('Failed')}</dt>
      <dd data-count="failed">{p.c.failed}</dd>
      {p.c.dropped !== undefined && (
        <>
          <dt>{t('Dropped')}</dt>
          <dd data-count="dropped">{p.c.dropped}</dd>
        </>
      )}
    </dl>
  );
}

/** `datetime-local` value of a time, in the browser's zone */
const localInput = (ms: number) => new Date(ms - new Date(ms).getTimezoneOffset() * 60_000).toISOString().slice(0, 16);

function VersionSelect(p: { versions: { version: number; active: boolean }[]; name: string }) {
  // the newest version that is not active: the usual candidate
  const newest = (vs: { version: number }[]) => vs.reduce((m, v) => Math.max(m, v.version), 0);
  const [value, setValue] = useState(String(newest(p.versions.filter((v) => !v.active)) || newest(p.versions)));
  return (
    <label>
      {t('Version')}
      <select name={p.name} value={value} onChange={(e) => setValue(e.currentTarget.value)}>
        {p.versions.map((v) => (
          <option key={v.version} value={v.version}>
            v{v.version} {v.active ? `(${t('active')})` : ''}
          </option>
        ))}
      </select>
    </label>
  );
}

export function ReplayPanel(p: { id: string; versions: { version: number; active: boolean }[] }) {
  const { write } = useRole();
  const path = `/plugins/${encodeURIComponent(p.id)}/replay`;
  const [report, setReport] = useState<Replay | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    getOptional<Replay>(path).then(setReport, setError);
  }, [path]);
  const running = report?.state === 'running';
  // progress of a running replay
  useInterval(() => {
    if (running) get<Replay>(path).then(setReport, setError);
  }, 500);
  async function start(e: Event) {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    const limit = String(f.get('limit') ?? '').trim();
    const r = await act(() =>
      post<Replay>(path, {
        version: Number(f.get('version')),
        from: new Date(String(f.get('from'))).getTime(),
        to: new Date(String(f.get('to'))).getTime(),
        ...(limit ? { limit: Number(limit) } : {}),
        wait: false,
      }),
    );
    if (r) setReport(r);
  }
  const now = Date.now();
  return (
    <Card title={t('Replay recorded frames')}>
      <p class="hint">{t('Decode the recorded uplinks of a time range with a stored version and compare each output with the active version. Nothing is stored, no rule runs.')}</p>
      {write && (
        <form class="inline-form compare-form" onSubmit={start} data-testid="replay-form">
          <VersionSelect versions={p.versions} name="version" />
          <label>
            {t('From')}
            <input type="datetime-local" name="from" required defaultValue={localInput(now - 3600_000)} />
          </label>
          <label>
            {t('To')}
            <input type="datetime-local" name="to" required defaultValue={localInput(now + 60_000)} />
          </label>
          <label>
            {t('Limit')}
            <input type="number" name="limit" min={1} max={100000} placeholder="10000" />
          </label>
          <button type="submit" class="primary" disabled={running}>
            {t('Replay')}
          </button>
          {running && (
            <button type="button" class="danger" onClick={() => act(() => api<Replay>('DELETE', path)).then((r) => r && setReport(r))}>
              {t('Cancel')}
            </button>
          )}
        </form>
      )}
      <ErrorBox error={error} />
      {!report && <p class="hint">{t('No replay yet.')}</p>}
      {report && (
        <div data-testid="replay-report" data-state={report.state}>
          <p>
            {t('v{v} against active v{a}', { v: report.version, a: report.active_version })} · <span class={`status status-${report.state}`}>{t(report.state)}</span> · {fmtTime(report.started_at)}
            {report.state !== 'running' && ` · ${report.took_ms} ms`}
          </p>
          <CountsView c={report} testid="replay-counts" />
          {report.error && <div class="error">{report.error.message}</div>}
          {report.truncated && <p class="hint">{t('More frames matched than the limit: the first ones were compared.')}</p>}
          {report.diffs.length > 0 && report.diffs.length < report.different + report.failed && <p class="hint">{t('The first {n} diffs:', { n: report.diffs.length })}</p>}
          <DiffList diffs={report.diffs} active={report.active_version} version={report.version} testid="replay-diffs" />
        </div>
      )}
    </Card>
  );
}

export function ShadowPanel(p: { id: string; versions: { version: number; active: boolean }[]; onPromoted(): void }) {
  const { write } = useRole();
  const path = `/plugins/${encodeURIComponent(p.id)}/shadow`;
  const [shadow, setShadow] = useState<Shadow | null | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const refresh = () =>
    getOptional<Shadow>(path).then(
      (s) => (setShadow(s), setError(null)),
      (err) => setError(err),
    );
  useEffect(() => void refresh(), [path]);
  useInterval(() => void refresh(), 2000);
  async function start(e: Event) {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    const s = await act(() => post<Shadow>(path, { version: Number(f.get('version')), sample: Number(f.get('sample')) }), t('Shadow mode started'));
    if (s) setShadow(s);
  }
  return (
    <Card
      title={t('Shadow mode')}
      actions={
        write &&
        shadow && (
          <>
            <button
              type="button"
              class="primary"
              onClick={() =>
                confirm(t('Make v{v} the active version of {id}?', { v: shadow.version, id: p.id })) &&
                act(() => post(`${path}/promote`), t('Promoted')).then((r) => {
                  if (r) {
                    setShadow(null);
                    p.onPromoted();
                  }
                })
              }
            >
              {t('Promote')}
            </button>
            <button type="button" onClick={() => act(() => del(path), t('Shadow mode stopped')).then(() => void refresh())}>
              {t('Stop')}
            </button>
          </>
        )
      }
    >
      <p class="hint">{t('A stored version decodes a sample of the live frames beside the active version; the outputs are compared and counted, never stored.')}</p>
      <ErrorBox error={error} />
      {shadow === null && <p class="hint" data-testid="shadow-none">{t('No shadow version running.')}</p>}
      {shadow === null && write && (
        <form class="inline-form compare-form" onSubmit={start} data-testid="shadow-form">
          <VersionSelect versions={p.versions} name="version" />
          <label>
            {t('Sample (0–1)')}
            <input type="number" name="sample" min={0.001} max={1} step="any" defaultValue="1" required />
          </label>
          <button type="submit" class="primary">
            {t('Start shadow')}
          </button>
        </form>
      )}
      {shadow && (
        <div data-testid="shadow-status">
          <p>
            {t('v{v} beside active v{a}, {pct}% of the frames, since {since}', { v: shadow.version, a: shadow.active_version, pct: Math.round(shadow.sample * 1000) / 10, since: fmtTime(shadow.started_at) })}
          </p>
          <CountsView c={shadow} testid="shadow-counts" />
          <DiffList diffs={[...shadow.diffs].reverse()} active={shadow.active_version} version={shadow.version} testid="shadow-diffs" />
        </div>
      )}
    </Card>
  );
}
