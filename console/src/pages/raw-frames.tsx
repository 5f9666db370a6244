/** The device page's raw frames: uplinks exactly as received, from the durable uplink log (GET /api/devices/{id}/raw), each with its trace. */
import { useEffect, useState } from 'preact/hooks';
import { get, qs } from '../api.ts';
import { fmtTime, t } from '../i18n.ts';
import { Card, ErrorBox, Json, act, toast } from '../ui.tsx';

export interface RawFrame {
  msg_id: string;
  seq: number;
  ts: number;
  transport: string;
  type: string;
  event_id: string | null;
  topic: string | null;
  bytes: number;
  encoding: 'hex' | 'base64';
  payload: string;
  trace: string;
}
interface RawPage {
  items: RawFrame[];
  next: number | null;
  has_more: boolean;
}

const RANGES: [string, number][] = [
  ['last 15 minutes', 15 * 60_000],
  ['last hour', 3600_000],
  ['last 24 hours', 24 * 3600_000],
  ['last 7 days', 7 * 24 * 3600_000],
];
const PAGE = 50;

/** hex in byte pairs, for reading */
const spaced = (hex: string) => hex.replace(/(..)(?=.)/g, '$1 ');

/** A message's trace (GET /api/trace/{msgId}), opened under its frame. */
export function TraceOf(p: { msgId: string }) {
  const [trace, setTrace] = useState<unknown>(undefined);
  useEffect(() => {
    void act(() => get(`/trace/${encodeURIComponent(p.msgId)}`)).then((r) => setTrace(r ?? null));
  }, [p.msgId]);
  if (trace === undefined) return <p class="hint">…</p>;
  return trace === null ? <p class="hint">{t('No trace of this message (traces are kept for a while only).')}</p> : <Json value={trace} />;
}

export function RawFrames(p: { device: string }) {
  const [range, setRange] = useState(2);
  const [encoding, setEncoding] = useState<'hex' | 'base64'>('hex');
  const [pages, setPages] = useState<RawPage[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [open, setOpen] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  const [span, setSpan] = useState<{ from: number; to: number }>({ from: 0, to: 0 });

  async function load(before: number | null, w: { from: number; to: number }) {
    try {
      const page = await get<RawPage>(`/devices/${encodeURIComponent(p.device)}/raw${qs({ from: w.from, to: w.to, limit: PAGE, order: 'desc', before, encoding })}`);
      setPages((old) => (before === null ? [page] : [...old, page]));
      setError(null);
    } catch (err) {
      setError(err);
    }
  }
  useEffect(() => {
    const to = Date.now();
    const w = { from: to - RANGES[range]![1], to };
    setSpan(w);
    setPages([]);
    void load(null, w);
  }, [p.device, range, encoding, tick]);

  const items = pages.flatMap((x) => x.items);
  const last = pages[pages.length - 1];
  return (
    <Card
      title={t('Raw frames')}
      actions={
        <>
          <select aria-label={t('Range')} value={range} onChange={(e) => setRange(Number(e.currentTarget.value))}>
            {RANGES.map(([label], i) => (
              <option key={i} value={i}>
                {t(label)}
              </option>
            ))}
          </select>
          <select aria-label={t('Format')} value={encoding} onChange={(e) => setEncoding(e.currentTarget.value as 'hex')} data-testid="raw-encoding">
            <option value="hex">hex</option>
            <option value="base64">base64</option>
          </select>
          <button type="button" onClick={() => setTick((n) => n + 1)}>
            {t('Refresh')}
          </button>
        </>
      }
    >
      <ErrorBox error={error} />
      <p class="hint">{t('Uplinks exactly as received, newest first, from {from} to {to}.', { from: fmtTime(span.from), to: fmtTime(span.to) })}</p>
      {pages.length > 0 && items.length === 0 && <p class="hint">{t('No frames in this range.')}</p>}
      <table class="grid" data-testid="raw-frames">
        {items.length > 0 && (
          <thead>
            <tr>
              <th>{t('Received')}</th>
              <th>{t('Message id')}</th>
              <th>{t('Transport / topic')}</th>
              <th>{t('Bytes')}</th>
              <th>{encoding}</th>
              <th />
            </tr>
          </thead>
        )}
        <tbody>
          {items.map((f) => (
            <>
              <tr key={f.msg_id} data-msg-id={f.msg_id}>
                <td class="nowrap">{fmtTime(f.ts)}</td>
                <td class="mono">{f.msg_id}</td>
                <td>
                  {f.transport}
                  {f.topic && <div class="mono hint">{f.topic}</div>}
                  {f.type !== 'properties' && <span class="tag">{f.event_id ? `${f.type}: ${f.event_id}` : f.type}</span>}
                </td>
                <td class="num">{f.bytes}</td>
                <td class="mono payload">{f.encoding === 'hex' ? spaced(f.payload) : f.payload}</td>
                <td class="nowrap">
                  <button type="button" title={t('Copy')} onClick={() => navigator.clipboard?.writeText(f.payload).then(() => toast(t('Copied')))}>
                    {t('Copy')}
                  </button>
                  <button type="button" class="trace-link" onClick={() => setOpen(open === f.msg_id ? null : f.msg_id)}>
                    {t('Trace')}
                  </button>
                </td>
              </tr>
              {open === f.msg_id && (
                <tr key={`${f.msg_id}-trace`}>
                  <td colSpan={6} data-testid="raw-trace">
                    <TraceOf msgId={f.msg_id} />
                  </td>
                </tr>
              )}
            </>
          ))}
        </tbody>
      </table>
      {last?.has_more && (
        <div class="pager">
          <button type="button" onClick={() => void load(last.next, span)}>
            {t('Older frames')} ›
          </button>
        </div>
      )}
    </Card>
  );
}
