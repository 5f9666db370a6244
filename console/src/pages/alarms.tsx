/** Alarm center: live list with level and state filters, acknowledge with a note, clear, history. */
import { useEffect, useRef, useState } from 'preact/hooks';
import { feedUrl, get, post, qs } from '../api.ts';
import { query, setQuery } from '../router.ts';
import { useSignal } from '../state.ts';
import { fmtTime, t, useLang } from '../i18n.ts';
import { Card, ErrorBox, Level, Link, Pager, act, useAsync, useRole } from '../ui.tsx';
import type { Alarm } from '../../../runtime/api-shapes/index.ts';

const LIMIT = 50;

function AckForm(p: { alarm: Alarm; onDone(): void; onCancel(): void }) {
  const [note, setNote] = useState('');
  return (
    <form
      class="inline-form ack-form"
      onSubmit={async (e) => {
        e.preventDefault();
        const ok = await act(() => post(`/alarms/${encodeURIComponent(p.alarm.id)}/ack`, note.trim() ? { note: note.trim() } : {}), t('Acknowledged'));
        if (ok) p.onDone();
      }}
    >
      <input class="grow" aria-label={t('Note')} placeholder={t('Note (what was done, who is on it)')} value={note} maxLength={1000} onInput={(e) => setNote(e.currentTarget.value)} autoFocus />
      <button type="submit" class="primary">
        {t('Acknowledge')}
      </button>
      <button type="button" onClick={p.onCancel}>
        {t('Cancel')}
      </button>
    </form>
  );
}

export function Alarms() {
  useLang();
  const { write } = useRole();
  const q = useSignal(query);
  const state = q.get('state') ?? 'open';
  const level = q.get('level') ?? '';
  const offset = Number(q.get('offset') ?? 0) || 0;
  const [acking, setAcking] = useState<string | null>(null);
  // "open" = active and acknowledged: two requests, merged (the API filters one state at a time).
  const list = useAsync(
    async (s) => {
      const one = (st: string, lim: number, off: number) => get<{ items: Alarm[]; total: number }>(`/alarms${qs({ state: st, level, limit: lim, offset: off })}`, s);
      if (state !== 'open') return one(state === 'all' ? '' : state, LIMIT, offset);
      const active = await one('active', LIMIT, offset);
      const rest = LIMIT - active.items.length;
      const acked = await one('acknowledged', Math.max(1, rest), Math.max(0, offset - active.total));
      return { items: [...active.items, ...(rest > 0 ? acked.items : [])], total: active.total + acked.total };
    },
    [state, level, offset],
  );
  // Live: any alarm event reloads the page of the list (at most twice a second).
  const reloadSoon = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  useEffect(() => {
    const ws = new WebSocket(feedUrl({ events: 'alarm' }));
    ws.onmessage = () => {
      if (reloadSoon.current) return;
      reloadSoon.current = setTimeout(() => {
        reloadSoon.current = undefined;
        list.reload();
      }, 500);
    };
    return () => {
      ws.close();
      clearTimeout(reloadSoon.current);
    };
  }, []);
  return (
    <div class="page">
      <h1>{t('Alarm center')}</h1>
      <Card
        actions={
          <>
            <select aria-label={t('State')} value={state} onChange={(e) => setQuery({ state: e.currentTarget.value, offset: undefined })}>
              <option value="open">{t('open (active or acknowledged)')}</option>
              <option value="active">{t('active')}</option>
              <option value="acknowledged">{t('acknowledged')}</option>
              <option value="cleared">{t('cleared (history)')}</option>
              <option value="all">{t('all')}</option>
            </select>
            <select aria-label={t('Level')} value={level} onChange={(e) => setQuery({ level: e.currentTarget.value, offset: undefined })}>
              <option value="">{t('any level')}</option>
              <option value="critical">{t('critical')}</option>
              <option value="warning">{t('warning')}</option>
              <option value="info">{t('info')}</option>
            </select>
          </>
        }
      >
        <ErrorBox error={list.error} />
        <table class="grid" data-testid="alarm-list">
          <thead>
            <tr>
              <th>{t('Level')}</th>
              <th>{t('Message')}</th>
              <th>{t('Device')}</th>
              <th>{t('State')}</th>
              <th class="num">{t('Count')}</th>
              <th>{t('Last')}</th>
              {write && <th />}
            </tr>
          </thead>
          <tbody>
            {list.data?.items.map((a) => (
              <>
                <tr key={a.id} class={`alarm-${a.state}`}>
                  <td>
                    <Level level={a.level} />
                  </td>
                  <td>
                    {a.message}
                    {a.ack_note && <div class="hint">{t('Note by {who}: {note}', { who: a.acked_by ?? '—', note: a.ack_note })}</div>}
                  </td>
                  <td>{a.device_id ? <Link to={`devices/${encodeURIComponent(a.device_id)}`}>{a.device_id}</Link> : '—'}</td>
                  <td>
                    {t(a.state)}
                    {a.acked_at && <div class="hint">{fmtTime(a.acked_at)}{a.acked_by ? ` · ${a.acked_by}` : ''}</div>}
                  </td>
                  <td class="num">{a.count}</td>
                  <td class="nowrap">{fmtTime(a.last_at)}</td>
                  {write && (
                    <td class="nowrap">
                      {a.state === 'active' && (
                        <button type="button" class="small" onClick={() => setAcking(a.id)}>
                          {t('Acknowledge')}
                        </button>
                      )}
                      {a.state !== 'cleared' && (
                        <button type="button" class="small" onClick={() => act(() => post(`/alarms/${encodeURIComponent(a.id)}/clear`), t('Cleared')).then(list.reload)}>
                          {t('Clear')}
                        </button>
                      )}
                    </td>
                  )}
                </tr>
                {acking === a.id && (
                  <tr key={`${a.id}-ack`}>
                    <td colSpan={7}>
                      <AckForm alarm={a} onCancel={() => setAcking(null)} onDone={() => (setAcking(null), list.reload())} />
                    </td>
                  </tr>
                )}
              </>
            ))}
          </tbody>
        </table>
        {list.data?.items.length === 0 && <p class="hint">{t('No alarms.')}</p>}
        {list.data && <Pager total={list.data.total} limit={LIMIT} offset={offset} onChange={(o) => setQuery({ offset: o ? String(o) : undefined })} />}
      </Card>
    </div>
  );
}
