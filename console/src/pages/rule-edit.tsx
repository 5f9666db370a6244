/** One rule: the script in CodeMirror, where it applies, its action as a form, a test run and its counters. */
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, del, get, post, put } from '../api.ts';
import { navigate } from '../router.ts';
import { t, useLang } from '../i18n.ts';
import { Card, ErrorBox, Json, Link, act, toast, toastError, useAsync, useRole } from '../ui.tsx';
import type { ScriptEditor } from '../code-editor.ts';
import type { Rule } from './rules.tsx';
import { ActionForm, TestResult, type TestOutcome } from './rule-parts.tsx';

const SAMPLE_SCRIPT = 'let temp = msg.values.temperature;\n\nif temp > 45.0 {\n    print("high temperature: " + temp);\n    return true;\n} else {\n    return false;\n}\n';

function parseJson(text: string, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text || '{}');
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    /* below */
  }
  throw new Error(t('{what} must be a JSON object', { what }));
}

export function RuleEdit(p: { id?: string }) {
  useLang();
  const rule = useAsync((s) => (p.id ? get<Rule>(`/rules/${encodeURIComponent(p.id)}`, s) : Promise.resolve(undefined)), [p.id]);
  if (rule.error) return <ErrorBox error={rule.error} />;
  if (p.id && !rule.data) return <div class="loading">…</div>;
  return <RuleEditor key={`${rule.data?.id ?? 'new'}-${rule.data?.version ?? 0}`} id={p.id} r={rule.data} reload={rule.reload} />;
}

function RuleEditor(p: { id?: string; r?: Rule; reload(): void }) {
  const { write } = useRole();
  const r = p.r;
  const host = useRef<HTMLDivElement>(null);
  const editor = useRef<ScriptEditor | null>(null);
  const [action, setAction] = useState<{ type: Rule['action_type']; config: Record<string, unknown> }>(r ? { type: r.action_type, config: r.action_config } : { type: 'alarm', config: { level: 'warning' } });
  const [outcome, setOutcome] = useState<TestOutcome | null>(null);
  const [sample, setSample] = useState('{"temperature": 46.5}');
  const [sampleDevice, setSampleDevice] = useState('sensor_1');
  useEffect(() => {
    let cancelled = false;
    // CodeMirror is a separate chunk: only this page pays for it.
    void import('../code-editor.ts').then(({ createScriptEditor, errorPosition }) => {
      if (cancelled || !host.current) return;
      editor.current = createScriptEditor(host.current, r?.trigger_script ?? SAMPLE_SCRIPT, { readOnly: !write, onChange: () => editor.current?.showError(null) });
      if (r?.compile_error) {
        const pos = errorPosition(r.compile_error);
        if (pos) editor.current.showError({ ...pos, message: r.compile_error });
      }
    });
    return () => {
      cancelled = true;
      editor.current?.destroy();
      editor.current = null;
    };
  }, []);

  async function markError(message: string) {
    const { errorPosition } = await import('../code-editor.ts');
    const pos = errorPosition(message);
    if (pos) editor.current?.showError({ ...pos, message });
  }

  async function save(e: Event) {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    try {
      const body = {
        name: String(f.get('name')),
        enabled: f.get('enabled') === 'on',
        trigger_script: editor.current?.value() ?? '',
        action_type: action.type,
        action_config: action.config,
        product_id: String(f.get('product_id') ?? '') || null,
        device_id: String(f.get('device_id') ?? '') || null,
        env: parseJson(String(f.get('env') ?? ''), 'env'),
      };
      const saved = p.id ? await put<Rule>(`/rules/${encodeURIComponent(p.id)}`, body) : await post<Rule>('/rules', body);
      if (p.id) p.reload();
      else navigate(`rules/${encodeURIComponent(saved.id)}`, true);
      toast(t('Saved'));
    } catch (err) {
      if (err instanceof ApiError && err.code === 'script_syntax') void markError(err.message);
      toastError(err);
    }
  }

  async function runTest() {
    try {
      const form = host.current?.closest('form') as HTMLFormElement | null;
      const env = parseJson(String(form ? new FormData(form).get('env') ?? '' : ''), 'env');
      const msg = { device_id: sampleDevice, values: parseJson(sample, t('Sample values')), ts: Date.now() };
      const out = await post<TestOutcome>('/rules/test', { trigger_script: editor.current?.value() ?? '', env, msg });
      setOutcome(out);
      if (out.error) void markError(out.error.message);
    } catch (err) {
      toastError(err);
    }
  }

  return (
    <div class="page">
      <p>
        <Link to="rules">← {t('Rules and scenes')}</Link>
      </p>
      <h1>{r ? r.name : t('New rule')}</h1>
      <form onSubmit={save} class="form" data-testid="rule-form">
        <Card title={t('Rule')}>
          <div class="row">
            <label class="grow">
              {t('Name')}
              <input name="name" required defaultValue={r?.name ?? ''} readOnly={!write} />
            </label>
            <label>
              {t('Product (id or key)')}
              <input name="product_id" defaultValue={r?.product_id ?? ''} placeholder={t('every product')} readOnly={!write} />
            </label>
            <label>
              {t('Device id')}
              <input name="device_id" defaultValue={r?.device_id ?? ''} placeholder={t('every device')} readOnly={!write} />
            </label>
            <label class="inline">
              <input type="checkbox" name="enabled" defaultChecked={r?.enabled ?? true} disabled={!write} /> {t('Enabled')}
            </label>
          </div>
          <label>{t('Script')}</label>
          <div ref={host} class="code" data-testid="script-editor" />
          <p class="hint">{t('JavaScript or the Rhai forms (if x > 1 { … }, #{ k: v }); msg, env, print, log_info, send_command, raise_alarm. Return true to trigger the action.')}</p>
          <label>
            {t('env (JSON, read-only settings the script sees)')}
            <input name="env" class="mono" defaultValue={JSON.stringify(r?.env ?? {})} readOnly={!write} />
          </label>
        </Card>
        <Card title={t('Action when triggered')}>
          <ActionForm value={action} onChange={setAction} readOnly={!write} />
        </Card>
        {write && (
          <div class="buttons">
            <button type="submit" class="primary">
              {t('Save')}
            </button>
            {r && (
              <button type="button" class="danger" onClick={() => confirm(t('Delete rule {name}?', { name: r.name })) && act(() => del(`/rules/${encodeURIComponent(r.id)}`), t('Deleted')).then(() => navigate('rules'))}>
                {t('Delete')}
              </button>
            )}
          </div>
        )}
      </form>
      {write && (
      <Card title={t('Test run')} id="test-run">
        <p class="hint">{t('Runs the script in the editor on a sample message. Nothing is sent, raised or stored.')}</p>
        <div class="inline-form">
          <label>
            {t('Device id')}
            <input value={sampleDevice} onInput={(e) => setSampleDevice(e.currentTarget.value)} />
          </label>
          <label class="grow">
            {t('Sample values (JSON)')}
            <input class="mono" aria-label={t('Sample values (JSON)')} value={sample} onInput={(e) => setSample(e.currentTarget.value)} />
          </label>
          <button type="button" class="primary" onClick={runTest}>
            {t('Run test')}
          </button>
        </div>
        {outcome && <TestResult outcome={outcome} />}
      </Card>
      )}
      {r && (
        <Card title={t('Counters')}>
          <Json value={r.stats} />
        </Card>
      )}
    </div>
  );
}
