/** Plugins: upload (file picker or drag and drop, optionally stored without activating), versions, rollback, limits, try-decode on sample bytes, replay and shadow mode. */
import { useState } from 'preact/hooks';
import { api, del, get, post } from '../api.ts';
import { navigate } from '../router.ts';
import { fmtTime, t, useLang } from '../i18n.ts';
import { Card, ErrorBox, Json, Link, act, toast, useAsync, useRole } from '../ui.tsx';
import { ReplayPanel, ShadowPanel } from './plugin-compare.tsx';

interface Version {
  version: number;
  sha256: string;
  size: number;
  source: string;
  active: boolean;
  created_at: string;
  meta: { name?: string; version?: string; protocol?: string; exports: string[]; limits: { deadline_ms: number; memory_mib: number } };
}
interface Plugin {
  id: string;
  active_version: number | null;
  meta: Version['meta'] | null;
  versions: Version[];
}

function Upload(p: { onDone(id: string): void }) {
  const [over, setOver] = useState(false);
  const [busy, setBusy] = useState('');
  const [id, setId] = useState('');
  const [store, setStore] = useState(false);
  async function upload(file: File | undefined) {
    if (!file) return;
    if (!/\.wasm$/i.test(file.name)) {
      toast(t('Choose a .wasm file'), 'error');
      return;
    }
    const pid = id.trim() || file.name.replace(/\.wasm$/i, '');
    setBusy(t('Uploading {name}…', { name: file.name }));
    const v = await act(async () => api<Version>('PUT', `/plugins/${encodeURIComponent(pid)}${store ? '?activate=false' : ''}`, { raw: await file.arrayBuffer(), contentType: 'application/wasm' }));
    setBusy('');
    if (v) {
      toast(v.active ? t('Installed {id} v{version}', { id: pid, version: v.version }) : t('Stored {id} v{version}, not active', { id: pid, version: v.version }));
      p.onDone(pid);
    }
  }
  return (
    <div
      class={`drop ${over ? 'over' : ''}`}
      data-testid="plugin-drop"
      onDragOver={(e) => (e.preventDefault(), setOver(true))}
      onDragLeave={() => setOver(false)}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        void upload(e.dataTransfer?.files[0]);
      }}
    >
      <p>{t('Drop a .wasm protocol plugin here, or choose the file:')}</p>
      <div class="inline-form">
        <label>
          {t('Plugin id')}
          <input value={id} placeholder={t('the file name when empty')} onInput={(e) => setId(e.currentTarget.value)} pattern="[A-Za-z0-9_.\-]{1,64}" />
        </label>
        <label class="button">
          {t('Choose a file…')}
          <input type="file" accept=".wasm,application/wasm" class="hidden-file" onChange={(e) => void upload(e.currentTarget.files?.[0])} />
        </label>
        <label class="inline" title={t('Keep the version for a replay or shadow mode; the active version stays')}>
          <input type="checkbox" name="store-only" checked={store} onChange={(e) => setStore(e.currentTarget.checked)} /> {t('store without activating')}
        </label>
      </div>
      {busy && <p>{busy}</p>}
    </div>
  );
}

function TryDecode(p: { id: string }) {
  const [format, setFormat] = useState<'hex' | 'base64'>('hex');
  const [out, setOut] = useState<unknown>(null);
  async function submit(e: Event) {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    const input = String(f.get('bytes')).replace(format === 'hex' ? /[\s:]/g : /\s/g, '');
    setOut(await act(() => post(`/plugins/${encodeURIComponent(p.id)}/decode`, { [format]: input })));
  }
  return (
    <form class="form" onSubmit={submit} data-testid="try-decode">
      <div class="inline-form">
        <select aria-label={t('Format')} value={format} onChange={(e) => setFormat(e.currentTarget.value as 'hex')}>
          <option value="hex">hex</option>
          <option value="base64">base64</option>
        </select>
        <input name="bytes" class="grow mono" required placeholder={format === 'hex' ? '01 03 02 01 c5 00 00' : 'AQMCAcUAAA=='} />
        <button type="submit" class="primary">
          {t('Decode')}
        </button>
      </div>
      {out !== null && out !== undefined && <Json value={out} />}
    </form>
  );
}

function PluginDetail(p: { id: string }) {
  const { write } = useRole();
  const path = `/plugins/${encodeURIComponent(p.id)}`;
  const pl = useAsync((s) => get<Plugin>(path, s), [p.id]);
  const x = pl.data;
  return (
    <div class="page">
      <p>
        <Link to="plugins">← {t('Plugins')}</Link>
      </p>
      <h1>{p.id}</h1>
      <ErrorBox error={pl.error} />
      {x && (
        <>
          <Card
            title={t('Versions')}
            actions={
              write && (
                <>
                  <button type="button" disabled={x.versions.length < 2} onClick={() => act(() => post(`${path}/rollback`), t('Rolled back')).then(pl.reload)}>
                    {t('Roll back')}
                  </button>
                  <button type="button" class="danger" onClick={() => confirm(t('Delete plugin {id} and all its versions?', { id: p.id })) && act(() => del(path), t('Deleted')).then(() => navigate('plugins'))}>
                    {t('Delete')}
                  </button>
                </>
              )
            }
          >
            <table class="grid">
              <thead>
                <tr>
                  <th>{t('Version')}</th>
                  <th>sha256</th>
                  <th>{t('Size')}</th>
                  <th>{t('Source')}</th>
                  <th>{t('Installed')}</th>
                  <th>{t('Protocol')}</th>
                </tr>
              </thead>
              <tbody>
                {x.versions.map((v) => (
                  <tr key={v.version} class={v.active ? 'active' : ''}>
                    <td>
                      v{v.version} {v.active && <span class="tag">{t('active')}</span>}
                    </td>
                    <td class="mono">{v.sha256.slice(0, 16)}…</td>
                    <td>{Math.round(v.size / 1024)} KB</td>
                    <td>{v.source}</td>
                    <td>{fmtTime(v.created_at)}</td>
                    <td>{v.meta.protocol ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {x.meta && (
              <p class="hint">
                {t('Exports')}: {x.meta.exports.join(', ')} · {t('deadline {ms} ms, memory {mib} MiB', { ms: x.meta.limits.deadline_ms, mib: x.meta.limits.memory_mib })}
              </p>
            )}
          </Card>
          <Card title={t('Try decode')}>
            <TryDecode id={p.id} />
          </Card>
          <ReplayPanel id={p.id} versions={x.versions} />
          <ShadowPanel id={p.id} versions={x.versions} onPromoted={pl.reload} />
        </>
      )}
    </div>
  );
}

export function Plugins(p: { id?: string }) {
  useLang();
  const { write } = useRole();
  const list = useAsync((s) => get<{ items: Plugin[] }>('/plugins', s), []);
  if (p.id) return <PluginDetail id={p.id} />;
  return (
    <div class="page">
      <h1>{t('Plugins')}</h1>
      {write && (
        <Card title={t('Upload a plugin')}>
          <Upload onDone={list.reload} />
        </Card>
      )}
      <Card title={t('Installed plugins')}>
        <ErrorBox error={list.error} />
        <table class="grid" data-testid="plugin-list">
          <thead>
            <tr>
              <th>{t('Plugin id')}</th>
              <th>{t('Active version')}</th>
              <th>{t('Protocol')}</th>
              <th>{t('Versions')}</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.items.map((x) => (
              <tr key={x.id}>
                <td>
                  <Link to={`plugins/${encodeURIComponent(x.id)}`}>{x.id}</Link>
                </td>
                <td>{x.active_version ? `v${x.active_version}` : t('not active')}</td>
                <td>{x.meta?.protocol ?? '—'}</td>
                <td>{x.versions.length}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </Card>
    </div>
  );
}
