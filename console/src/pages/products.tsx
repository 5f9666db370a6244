/** Products: list, create and edit, with the thing model (TSL) as a table editor and the protocol plugin picker. */
import { useState } from 'preact/hooks';
import { del, get, patch, post, qs } from '../api.ts';
import { navigate } from '../router.ts';
import { fmtTime, t, useLang } from '../i18n.ts';
import { Card, ErrorBox, Link, Pager, act, useAsync, useRole } from '../ui.tsx';
import type { ProductModbus } from './device-modbus.tsx';

export interface Product {
  id: string;
  key: string;
  name: string;
  description: string | null;
  protocol_plugin_id: string | null;
  metadata: ThingModel;
  /** `transport.modbus`: the register map FLUX polls (docs/modbus.md) */
  transport?: { modbus?: ProductModbus } | null;
  created_at: string;
}
interface Row {
  id: string;
  name?: string;
  type?: string;
  unit?: string;
  [k: string]: unknown;
}
interface ThingModel {
  properties?: Row[];
  events?: Row[];
  commands?: Row[];
  [k: string]: unknown;
}

const TYPES = ['float', 'double', 'int', 'number', 'bool', 'string', 'enum'];
const KINDS = [
  ['properties', 'Properties'],
  ['events', 'Events'],
  ['commands', 'Commands'],
] as const;

function ModelTable(p: { kind: 'properties' | 'events' | 'commands'; rows: Row[]; onChange(rows: Row[]): void; readOnly: boolean }) {
  const set = (i: number, k: string, v: string) => p.onChange(p.rows.map((r, j) => (j === i ? { ...r, [k]: v || undefined, id: k === 'id' ? v : r.id } : r)));
  const typed = p.kind === 'properties';
  return (
    <table class="grid model" data-kind={p.kind}>
      <thead>
        <tr>
          <th>{t('Identifier')}</th>
          <th>{t('Name')}</th>
          {typed && <th>{t('Type')}</th>}
          {typed && <th>{t('Unit')}</th>}
          {!p.readOnly && <th />}
        </tr>
      </thead>
      <tbody>
        {p.rows.map((r, i) => (
          <tr key={i}>
            <td>
              <input aria-label={t('Identifier')} value={r.id} readOnly={p.readOnly} required pattern="[A-Za-z0-9_.\-]{1,64}" onInput={(e) => set(i, 'id', e.currentTarget.value)} />
            </td>
            <td>
              <input aria-label={t('Name')} value={r.name ?? ''} readOnly={p.readOnly} onInput={(e) => set(i, 'name', e.currentTarget.value)} />
            </td>
            {typed && (
              <td>
                <select aria-label={t('Type')} value={r.type ?? 'float'} disabled={p.readOnly} onChange={(e) => set(i, 'type', e.currentTarget.value)}>
                  {TYPES.map((x) => (
                    <option key={x} value={x}>
                      {x}
                    </option>
                  ))}
                </select>
              </td>
            )}
            {typed && (
              <td>
                <input aria-label={t('Unit')} class="short" value={r.unit ?? ''} readOnly={p.readOnly} onInput={(e) => set(i, 'unit', e.currentTarget.value)} />
              </td>
            )}
            {!p.readOnly && (
              <td>
                <button type="button" class="danger small" onClick={() => p.onChange(p.rows.filter((_, j) => j !== i))}>
                  {t('Remove')}
                </button>
              </td>
            )}
          </tr>
        ))}
      </tbody>
      {!p.readOnly && (
        <tfoot>
          <tr>
            <td colSpan={5}>
              <button type="button" class="small" onClick={() => p.onChange([...p.rows, typed ? { id: '', type: 'float' } : { id: '' }])}>
                + {t('Add a row')}
              </button>
            </td>
          </tr>
        </tfoot>
      )}
    </table>
  );
}

function ProductForm(p: { product?: Product; onSaved(pr: Product): void }) {
  const { write } = useRole();
  const pr = p.product;
  const [model, setModel] = useState<ThingModel>(pr?.metadata ?? { properties: [], events: [], commands: [] });
  const [tab, setTab] = useState<(typeof KINDS)[number][0]>('properties');
  const plugins = useAsync((s) => get<{ items: { id: string; active_version: number | null; meta: { protocol?: string } | null }[] }>('/plugins', s), []);
  async function submit(e: Event) {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    const body = {
      key: String(f.get('key')),
      name: String(f.get('name')),
      description: String(f.get('description') ?? '') || null,
      protocol_plugin_id: String(f.get('plugin') ?? '') || null,
      metadata: model,
    };
    const saved = await act(() => (pr ? patch<Product>(`/products/${encodeURIComponent(pr.id)}`, body) : post<Product>('/products', body)), t('Saved'));
    if (saved) p.onSaved(saved);
  }
  return (
    <form onSubmit={submit} class="form" data-testid="product-form">
      <div class="row">
        <label>
          {t('Product key')}
          <input name="key" defaultValue={pr?.key} required readOnly={!write} placeholder="boiler" />
        </label>
        <label>
          {t('Name')}
          <input name="name" defaultValue={pr?.name} required readOnly={!write} />
        </label>
        <label>
          {t('Protocol plugin')}
          <select name="plugin" disabled={!write} defaultValue={pr?.protocol_plugin_id ?? ''}>
            <option value="">{t('none (devices send JSON)')}</option>
            {plugins.data?.items.map((x) => (
              <option key={x.id} value={x.id} selected={x.id === pr?.protocol_plugin_id}>
                {x.id}
                {x.active_version ? ` v${x.active_version}` : ''}
                {x.meta?.protocol ? ` · ${x.meta.protocol}` : ''}
              </option>
            ))}
          </select>
        </label>
      </div>
      <label>
        {t('Description')}
        <input name="description" defaultValue={pr?.description ?? ''} readOnly={!write} />
      </label>
      <h3>{t('Thing model')}</h3>
      <div class="tabs">
        {KINDS.map(([k, label]) => (
          <button type="button" key={k} class={tab === k ? 'active' : ''} onClick={() => setTab(k)}>
            {t(label)} ({model[k]?.length ?? 0})
          </button>
        ))}
      </div>
      <ModelTable kind={tab} rows={model[tab] ?? []} readOnly={!write} onChange={(rows) => setModel({ ...model, [tab]: rows })} />
      {write && (
        <div class="buttons">
          <button type="submit" class="primary">
            {pr ? t('Save') : t('Create product')}
          </button>
        </div>
      )}
    </form>
  );
}

export function Products(p: { id?: string }) {
  useLang();
  const { write } = useRole();
  const [offset, setOffset] = useState(0);
  const [q, setQ] = useState('');
  const list = useAsync((s) => get<{ items: Product[]; total: number; limit: number }>(`/products${qs({ limit: 50, offset, q })}`, s), [offset, q]);
  const editing = useAsync((s) => (p.id && p.id !== 'new' ? get<Product>(`/products/${encodeURIComponent(p.id)}`, s) : Promise.resolve(undefined)), [p.id]);
  if (p.id) {
    return (
      <div class="page">
        <p>
          <Link to="products">← {t('Products')}</Link>
        </p>
        <Card title={p.id === 'new' ? t('New product') : t('Product {name}', { name: editing.data?.name ?? p.id })}>
          <ErrorBox error={editing.error} />
          {(p.id === 'new' || editing.data) && (
            <ProductForm
              key={editing.data?.id ?? 'new'}
              product={editing.data}
              onSaved={(pr) => {
                if (p.id === 'new') navigate(`products/${encodeURIComponent(pr.id)}`, true);
                else editing.reload();
              }}
            />
          )}
        </Card>
      </div>
    );
  }
  return (
    <div class="page">
      <h1>{t('Products')}</h1>
      <Card
        actions={
          <>
            <input type="search" placeholder={t('Search')} value={q} onInput={(e) => (setQ(e.currentTarget.value), setOffset(0))} />
            {write && (
              <Link to="products/new" class="button primary">
                + {t('New product')}
              </Link>
            )}
          </>
        }
      >
        <ErrorBox error={list.error} />
        <table class="grid">
          <thead>
            <tr>
              <th>{t('Product key')}</th>
              <th>{t('Name')}</th>
              <th>{t('Protocol plugin')}</th>
              <th>{t('Properties')}</th>
              <th>{t('Created')}</th>
              {write && <th />}
            </tr>
          </thead>
          <tbody>
            {list.data?.items.map((x) => (
              <tr key={x.id}>
                <td>
                  <Link to={`products/${encodeURIComponent(x.id)}`}>{x.key}</Link>
                </td>
                <td>{x.name}</td>
                <td>{x.protocol_plugin_id ?? '—'}</td>
                <td>{x.metadata?.properties?.length ?? 0}</td>
                <td>{fmtTime(x.created_at)}</td>
                {write && (
                  <td>
                    <button type="button" class="danger small" onClick={() => confirm(t('Delete product {name}?', { name: x.key })) && act(() => del(`/products/${encodeURIComponent(x.id)}`), t('Deleted')).then(list.reload)}>
                      {t('Delete')}
                    </button>
                  </td>
                )}
              </tr>
            ))}
          </tbody>
        </table>
        {list.data && <Pager total={list.data.total} limit={50} offset={offset} onChange={setOffset} />}
      </Card>
    </div>
  );
}
