/** Overview: devices online and total, messages per second (live), open alarms by level, recent events. */
import { useEffect, useRef, useState } from 'preact/hooks';
import { feedUrl, get } from '../api.ts';
import { fmtTime, t, useLang } from '../i18n.ts';
import { Card, ErrorBox, Level, Link, useAsync, useInterval } from '../ui.tsx';

interface Counts {
  devices: number;
  online: number;
  alarms: Record<string, number>;
}

async function counts(signal: AbortSignal): Promise<Counts> {
  const n = (p: string) => get<{ total: number }>(p, signal).then((r) => r.total);
  const [devices, online, info, warning, critical] = await Promise.all([
    n('/devices?limit=1'),
    n('/devices?status=online&limit=1'),
    n('/alarms?state=active&level=info&limit=1'),
    n('/alarms?state=active&level=warning&limit=1'),
    n('/alarms?state=active&level=critical&limit=1'),
  ]);
  return { devices, online, alarms: { critical, warning, info } };
}

/** Sum of a Prometheus counter over its labels. */
export function counterSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) sum += v;
  }
  return sum;
}

function useRate(): number | null {
  const [rate, setRate] = useState<number | null>(null);
  const last = useRef<{ at: number; total: number } | null>(null);
  const poll = () =>
    get<string>('/metrics').then((text) => {
      const total = counterSum(text, 'flux_pipeline_messages_total');
      const at = performance.now();
      if (last.current && at > last.current.at) setRate(Math.max(0, ((total - last.current.total) * 1000) / (at - last.current.at)));
      last.current = { at, total };
    }, () => undefined);
  useEffect(() => void poll(), []);
  useInterval(poll, 2000);
  return rate;
}

interface FeedItem {
  key: number;
  ts: number;
  text: string;
  device?: string;
  kind: string;
}

function useRecentEvents(): FeedItem[] {
  const [items, setItems] = useState<FeedItem[]>([]);
  useEffect(() => {
    let n = 0;
    const ws = new WebSocket(feedUrl({ events: 'status,alarm' }));
    ws.onmessage = (e) => {
      let ev: { type: string; ts: number; device_id?: string; status?: string; event?: string; alarm?: { level: string; message: string } };
      try {
        ev = JSON.parse(String(e.data));
      } catch {
        return;
      }
      const text = ev.type === 'status' ? t(ev.status === 'online' ? 'came online' : 'went offline') : ev.type === 'alarm' ? `${t(ev.event ?? 'alarm')}: ${ev.alarm?.message ?? ''}` : '';
      if (!text) return;
      const item = { key: ++n, ts: ev.ts, text, device: ev.device_id, kind: ev.type === 'alarm' ? `alarm-${ev.alarm?.level}` : `status-${ev.status}` };
      setItems((old) => [item, ...old].slice(0, 30));
    };
    return () => ws.close();
  }, []);
  return items;
}

export function Overview() {
  useLang();
  const c = useAsync(counts, []);
  useInterval(c.reload, 5000);
  const rate = useRate();
  const events = useRecentEvents();
  const d = c.data;
  return (
    <div class="page overview">
      <h1>{t('Overview')}</h1>
      <ErrorBox error={c.error} />
      <div class="tiles">
        <Link to="devices?status=online" class="tile">
          <span class="big" data-testid="online">{d ? d.online : '…'}</span>
          <span>{t('devices online')}</span>
        </Link>
        <Link to="devices" class="tile">
          <span class="big" data-testid="total">{d ? d.devices : '…'}</span>
          <span>{t('devices in all')}</span>
        </Link>
        <div class="tile">
          <span class="big" data-testid="rate">{rate === null ? '…' : rate < 10 ? rate.toFixed(1) : Math.round(rate)}</span>
          <span>{t('messages per second')}</span>
        </div>
        {(['critical', 'warning', 'info'] as const).map((l) => (
          <Link key={l} to={`alarms?state=active&level=${l}`} class={`tile tile-${l}`}>
            <span class="big">{d ? d.alarms[l] : '…'}</span>
            <span>
              {t('open alarms')} · <Level level={l} />
            </span>
          </Link>
        ))}
      </div>
      <Card title={t('Recent events')}>
        {events.length === 0 ? (
          <p class="hint">{t('Device status changes and alarms appear here as they happen.')}</p>
        ) : (
          <table class="grid">
            <tbody>
              {events.map((e) => (
                <tr key={e.key} class={e.kind}>
                  <td class="nowrap">{fmtTime(e.ts)}</td>
                  <td>{e.device ? <Link to={`devices/${encodeURIComponent(e.device)}`}>{e.device}</Link> : '—'}</td>
                  <td>{e.text}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Card>
    </div>
  );
}
