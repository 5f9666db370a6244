/** The rule page's action form (one per action type) and its test-run result. */
import { t } from '../i18n.ts';
import type { Rule } from './rules.tsx';

export interface TestOutcome {
  result?: unknown;
  triggered?: boolean;
  error?: { code: string; message: string };
  logs: { level: string; message: string }[];
  commands: { device_id: string; command: string; params: unknown }[];
  alarms: { level: string; message: string }[];
  micros: number;
  action?: unknown;
}

type Action = { type: Rule['action_type']; config: Record<string, unknown> };

function Field(p: { label: string; name: string; action: Action; onChange(a: Action): void; readOnly: boolean; type?: 'text' | 'number' | 'url'; placeholder?: string; json?: boolean }) {
  const v = p.action.config[p.name];
  const shown = p.json ? JSON.stringify(v ?? {}) : v === undefined ? '' : String(v);
  return (
    <label>
      {p.label}
      <input
        name={`action.${p.name}`}
        type={(p.type ?? 'text') as 'text'}
        defaultValue={shown}
        readOnly={p.readOnly}
        placeholder={p.placeholder}
        onChange={(e) => {
          const raw = e.currentTarget.value;
          let value: unknown = raw === '' ? undefined : p.type === 'number' ? Number(raw) : raw;
          if (p.json && raw) {
            try {
              value = JSON.parse(raw);
            } catch {
              e.currentTarget.setCustomValidity(t('not valid JSON'));
              return;
            }
          }
          e.currentTarget.setCustomValidity('');
          p.onChange({ ...p.action, config: { ...p.action.config, [p.name]: value } });
        }}
      />
    </label>
  );
}

export function ActionForm(p: { value: Action; onChange(a: Action): void; readOnly: boolean }) {
  const a = p.value;
  const f = (label: string, name: string, extra: Partial<Parameters<typeof Field>[0]> = {}) => <Field key={`${a.type}.${name}`} label={label} name={name} action={a} onChange={p.onChange} readOnly={p.readOnly} {...extra} />;
  return (
    <div class="form action-form">
      <div class="row">
        <label>
          {t('Action')}
          <select name="action_type" value={a.type} disabled={p.readOnly} onChange={(e) => p.onChange({ type: e.currentTarget.value as Action['type'], config: {} })}>
            {(['alarm', 'command', 'webhook', 'flow'] as const).map((x) => (
              <option key={x} value={x}>
                {t(x)}
              </option>
            ))}
          </select>
        </label>
        {a.type === 'alarm' && (
          <>
            <label>
              {t('Level')}
              <select name="action.level" value={String(a.config.level ?? 'warning')} disabled={p.readOnly} onChange={(e) => p.onChange({ ...a, config: { ...a.config, level: e.currentTarget.value } })}>
                {['info', 'warning', 'critical'].map((l) => (
                  <option key={l} value={l}>
                    {t(l)}
                  </option>
                ))}
              </select>
            </label>
            {f(t('Message ({{values.x}} placeholders)'), 'message', { placeholder: 'temperature {{values.temperature}}' })}
          </>
        )}
        {a.type === 'command' && (
          <>
            {f(t('Device id'), 'device_id', { placeholder: t('the device that sent the message') })}
            {f(t('Command'), 'command')}
            {f(t('Parameters (JSON)'), 'params', { json: true })}
          </>
        )}
        {a.type === 'webhook' && (
          <>
            {f('URL', 'url', { type: 'url', placeholder: 'https://example.com/hook' })}
            <label>
              {t('Method')}
              <select name="action.method" value={String(a.config.method ?? 'POST')} disabled={p.readOnly} onChange={(e) => p.onChange({ ...a, config: { ...a.config, method: e.currentTarget.value } })}>
                <option>POST</option>
                <option>PUT</option>
              </select>
            </label>
            {f(t('Timeout (ms)'), 'timeout_ms', { type: 'number' })}
            {f(t('Retries'), 'retries', { type: 'number' })}
          </>
        )}
      </div>
      <div class="row">
        <label class="inline">
          <input type="checkbox" checked={a.config.auto_clear === true} disabled={p.readOnly} onChange={(e) => p.onChange({ ...a, config: { ...a.config, auto_clear: e.currentTarget.checked || undefined } })} />
          {t('Clear the alarm when the rule is false again')}
        </label>
        {f(t('send_command calls per second'), 'commands_per_second', { type: 'number', placeholder: '10' })}
      </div>
      {a.type === 'flow' && <p class="hint">{t('The triggered message leaves the rule node on its first output; the flow decides.')}</p>}
    </div>
  );
}

export function TestResult(p: { outcome: TestOutcome }) {
  const o = p.outcome;
  return (
    <div class="test-result" data-testid="test-result">
      {o.error ? (
        <div class="error">
          {o.error.code}: {o.error.message}
        </div>
      ) : (
        <p>
          <strong class={o.triggered ? 'triggered' : ''}>{o.triggered ? t('Triggered') : t('Not triggered')}</strong> · {t('result')} <code>{JSON.stringify(o.result)}</code> · {o.micros} µs
        </p>
      )}
      <h4>{t('Logs')}</h4>
      {o.logs.length ? (
        <pre class="logs" data-testid="test-logs">
          {o.logs.map((l) => `[${l.level}] ${l.message}`).join('\n')}
        </pre>
      ) : (
        <p class="hint">{t('none')}</p>
      )}
      <h4>{t('Commands')}</h4>
      {o.commands.length ? <pre class="logs">{o.commands.map((c) => `${c.device_id} ← ${c.command} ${JSON.stringify(c.params)}`).join('\n')}</pre> : <p class="hint">{t('none')}</p>}
      <h4>{t('Alarms')}</h4>
      {o.alarms.length ? <pre class="logs">{o.alarms.map((a) => `[${a.level}] ${a.message}`).join('\n')}</pre> : <p class="hint">{t('none')}</p>}
    </div>
  );
}
