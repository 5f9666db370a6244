/** One device: status, secret reset, latest values, live chart, Modbus polling, history, command sender, trace, raw frames, sub-devices. */
import { useRef, useState } from 'preact/hooks';
import { del, get, getOptional, patch, post } from '../api.ts';
import { navigate } from '../router.ts';
import { fmtNumber, fmtTime, t, useLang } from '../i18n.ts';
import { LiveChart } from '../chart.tsx';
import { Card, ErrorBox, Link, Secret, Status, act, useAsync, useInterval, useRole } from '../ui.tsx';
import type { Device } from './devices.tsx';
import type { Product } from './products.tsx';
import { CommandSender, History, SubDevices, TracePanel } from './device-panels.tsx';
import { ModbusPanel } from './device-modbus.tsx';
import { RawFrames } from './raw-frames.tsx';

interface Latest {
  items: { metric: string; ts: number; value: unknown }[];
}

export function DeviceDetail(p: { id: string }) {
  useLang();
  const { write } = useRole();
  const path = `/devices/${encodeURIComponent(p.id)}`;
  const dev = useAsync((s) => get<Device>(path, s), [p.id]);
  const product = useAsync(() => (dev.data ? getOptional<Product>(`/products/${encodeURIComponent(dev.data.product_id)}`) : Promise.resolve(null)), [dev.data?.product_id]);
  const latest = useAsync((s) => get<Latest>(`${path}/latest`, s), [p.id]);
  const [live, setLive] = useState<Record<string, { value: unknown; ts: number }>>({});
  const [secret, setSecret] = useState<string | null>(null);
  // Live values are collected per message and shown twice a second: a re-render per message would cost frames.
  const pending = useRef<Record<string, { value: unknown; ts: number }> | null>(null);
  useInterval(() => {
    if (!pending.current) return;
    const add = pending.current;
    pending.current = null;
    setLive((old) => ({ ...old, ...add }));
  }, 500);
  const d = dev.data;
  const units = Object.fromEntries((product.data?.metadata.properties ?? []).map((x) => [x.id, x.unit ?? '']));
  const values: Record<string, { value: unknown; ts: number }> = {};
  for (const it of latest.data?.items ?? []) values[it.metric] = { value: it.value, ts: it.ts };
  Object.assign(values, live);
  if (dev.error) return <ErrorBox error={dev.error} />;
  if (!d) return <div class="loading">…</div>;
  return (
    <div class="page">
      <p>
        <Link to="devices">← {t('Devices')}</Link>
      </p>
      <h1>
        {d.name || d.id} <Status status={d.enabled ? d.status : 'disabled'} />
      </h1>
      <div class="cols">
        <Card
          title={t('Device')}
          actions={
            write && (
              <>
                <button type="button" onClick={() => act(() => patch(path, { enabled: !d.enabled }), t('Saved')).then(dev.reload)}>
                  {d.enabled ? t('Disable') : t('Enable')}
                </button>
                <button type="button" onClick={() => confirm(t('Reset the secret of {id}? The device must then use the new one.', { id: d.id })) && act(() => post<{ secret: string }>(`${path}/secret`)).then((r) => r && setSecret(r.secret))}>
                  {t('Reset secret')}
                </button>
                <button type="button" class="danger" onClick={() => confirm(t('Delete device {id}?', { id: d.id })) && act(() => del(path), t('Deleted')).then(() => navigate('devices'))}>
                  {t('Delete')}
                </button>
              </>
            )
          }
        >
          <dl class="facts">
            <dt>{t('Device id')}</dt>
            <dd>{d.id}</dd>
            <dt>{t('Product')}</dt>
            <dd>
              <Link to={`products/${encodeURIComponent(d.product_id)}`}>{product.data?.key ?? d.product_id}</Link>
            </dd>
            <dt>{t('Status')}</dt>
            <dd>
              <Status status={d.status} />
            </dd>
            <dt>{t('Last online')}</dt>
            <dd>{fmtTime(d.last_online)}</dd>
            <dt>{t('Created')}</dt>
            <dd>{fmtTime(d.created_at)}</dd>
            {d.gateway_id && (
              <>
                <dt>{t('Gateway')}</dt>
                <dd>
                  <Link to={`devices/${encodeURIComponent(d.gateway_id)}`}>{d.gateway_id}</Link>
                </dd>
              </>
            )}
            {product.data && (
              <>
                <dt>{t('Topics')}</dt>
                <dd>
                  <code>
                    /{product.data.key}/{d.id}/properties/report
                  </code>
                </dd>
              </>
            )}
          </dl>
          {secret && <Secret label={t('New secret:')} value={secret} />}
        </Card>
        <Card title={t('Latest values')} actions={<button type="button" onClick={latest.reload}>{t('Refresh')}</button>}>
          <ErrorBox error={latest.error} />
          <table class="grid" data-testid="latest">
            <tbody>
              {Object.entries(values).map(([m, v]) => (
                <tr key={m}>
                  <th>{m}</th>
                  <td class="num">
                    {fmtNumber(v.value)} {units[m] ?? ''}
                  </td>
                  <td class="nowrap">{fmtTime(v.ts)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {Object.keys(values).length === 0 && <p class="hint">{t('No values yet.')}</p>}
        </Card>
      </div>
      <Card title={t('Live')}>
        <LiveChart
          device={d.id}
          onValues={(vals, ts) => {
            const next = (pending.current ??= {});
            for (const [k, v] of Object.entries(vals)) next[k] = { value: v, ts };
          }}
        />
      </Card>
      {product.data?.transport?.modbus && <ModbusPanel device={d} map={product.data.transport.modbus} />}
      <History device={d.id} />
      {d.is_gateway && <SubDevices gateway={d.id} />}
      {write && <CommandSender device={d} commands={product.data?.metadata.commands ?? []} />}
      <TracePanel device={d.id} />
      <RawFrames device={d.id} />
    </div>
  );
}
