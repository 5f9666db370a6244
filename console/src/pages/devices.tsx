/** Devices: server-side paged list with search and status/product filters; creating a device shows its secret once. */
import { useEffect, useState } from 'preact/hooks';
import { get, post, qs } from '../api.ts';
import { query, setQuery } from '../router.ts';
import { useSignal } from '../state.ts';
import { fmtTime, t, useLang } from '../i18n.ts';
import { Card, ErrorBox, Link, Pager, Secret, Status, act, useAsync, useRole } from '../ui.tsx';
import type { Product } from './products.tsx';
import type { Device } from '../../../runtime/api-shapes/index.ts';

export type { Device };

const LIMIT = 50;

export function useProducts() {
  return useAsync((s) => get<{ items: Product[] }>('/products?limit=1000', s), []);
}

function NewDevice(p: { products: Product[]; onCreated(): void }) {
  const [secret, setSecret] = useState<{ id: string; secret: string } | null>(null);
  async function submit(e: Event) {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const body: Record<string, string> = { product_id: String(f.get('product_id')) };
    for (const k of ['id', 'name']) if (f.get(k)) body[k] = String(f.get(k));
    const d = await act(() => post<Device & { secret: string }>('/devices', body), t('Device created'));
    if (d) {
      setSecret({ id: d.id, secret: d.secret });
      form.reset();
      p.onCreated();
    }
  }
  return (
    <form class="form inline-form" onSubmit={submit} data-testid="new-device">
      <label>
        {t('Device id')}
        <input name="id" placeholder={t('generated when empty')} pattern="[A-Za-z0-9_.:\-]{1,64}" />
      </label>
      <label>
        {t('Name')}
        <input name="name" />
      </label>
      <label>
        {t('Product')}
        <select name="product_id" required>
          {p.products.map((x) => (
            <option key={x.id} value={x.id}>
              {x.key} · {x.name}
            </option>
          ))}
        </select>
      </label>
      <button type="submit" class="primary">
        {t('Create device')}
      </button>
      {secret && <Secret label={t('Secret of {id}:', { id: secret.id })} value={secret.secret} />}
    </form>
  );
}

export function Devices() {
  useLang();
  const { write } = useRole();
  const q = useSignal(query);
  const search = q.get('q') ?? '';
  const status = q.get('status') ?? '';
  const product = q.get('product') ?? '';
  const offset = Number(q.get('offset') ?? 0) || 0;
  const [text, setText] = useState(search);
  const [creating, setCreating] = useState(false);
  const products = useProducts();
  // Search as you type, a moment after the last key.
  useEffect(() => {
    if (text === search) return;
    const id = setTimeout(() => setQuery({ q: text, offset: undefined }), 250);
    return () => clearTimeout(id);
  }, [text]);
  const list = useAsync((s) => get<{ items: Device[]; total: number }>(`/devices${qs({ limit: LIMIT, offset, q: search, status, product_id: product })}`, s), [search, status, product, offset]);
  const productKey = (id: string) => products.data?.items.find((x) => x.id === id)?.key ?? id;
  return (
    <div class="page">
      <h1>{t('Devices')}</h1>
      <Card
        actions={
          <>
            <input type="search" aria-label={t('Search')} placeholder={t('Search id or name')} value={text} onInput={(e) => setText(e.currentTarget.value)} />
            <select aria-label={t('Status')} value={status} onChange={(e) => setQuery({ status: e.currentTarget.value, offset: undefined })}>
              <option value="">{t('any status')}</option>
              <option value="online">{t('online')}</option>
              <option value="offline">{t('offline')}</option>
            </select>
            <select aria-label={t('Product')} value={product} onChange={(e) => setQuery({ product: e.currentTarget.value, offset: undefined })}>
              <option value="">{t('any product')}</option>
              {products.data?.items.map((x) => (
                <option key={x.id} value={x.id}>
                  {x.key}
                </option>
              ))}
            </select>
            {write && (
              <button type="button" class="primary" onClick={() => setCreating(!creating)}>
                + {t('New device')}
              </button>
            )}
          </>
        }
      >
        {creating && products.data && <NewDevice products={products.data.items} onCreated={list.reload} />}
        <ErrorBox error={list.error} />
        <table class="grid" data-testid="device-list">
          <thead>
            <tr>
              <th>{t('Device id')}</th>
              <th>{t('Name')}</th>
              <th>{t('Product')}</th>
              <th>{t('Status')}</th>
              <th>{t('Last online')}</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.items.map((d) => (
              <tr key={d.id}>
                <td>
                  <Link to={`devices/${encodeURIComponent(d.id)}`}>{d.id}</Link>
                  {d.is_gateway && <span class="tag">{t('gateway')}</span>}
                </td>
                <td>{d.name}</td>
                <td>{productKey(d.product_id)}</td>
                <td>
                  <Status status={d.enabled ? d.status : 'disabled'} />
                </td>
                <td>{fmtTime(d.last_online)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {list.data && <Pager total={list.data.total} limit={LIMIT} offset={offset} onChange={(o) => setQuery({ offset: o ? String(o) : undefined })} />}
      </Card>
    </div>
  );
}
