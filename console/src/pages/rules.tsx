/** Rules and scenes: the list with counters, enable/disable. */
import { get, patch } from '../api.ts';
import { t, useLang } from '../i18n.ts';
import { Card, ErrorBox, Link, act, useAsync, useRole } from '../ui.tsx';
import type { RuleStatsView } from '../../../runtime/api-shapes/index.ts';

export interface Rule {
  id: string;
  name: string;
  enabled: boolean;
  trigger_script: string;
  action_type: 'webhook' | 'command' | 'alarm' | 'flow';
  action_config: Record<string, unknown>;
  product_id: string | null;
  device_id: string | null;
  env: Record<string, unknown>;
  version: number;
  stats: RuleStatsView;
  compile_error?: string;
}

export function Rules() {
  useLang();
  const { write } = useRole();
  const list = useAsync((s) => get<{ items: Rule[] }>('/rules', s), []);
  return (
    <div class="page">
      <h1>{t('Rules and scenes')}</h1>
      <Card
        actions={
          write && (
            <Link to="rules/new" class="button primary">
              + {t('New rule')}
            </Link>
          )
        }
      >
        <ErrorBox error={list.error} />
        <table class="grid" data-testid="rule-list">
          <thead>
            <tr>
              <th>{t('Name')}</th>
              <th>{t('Action')}</th>
              <th>{t('Applies to')}</th>
              <th class="num">{t('Runs')}</th>
              <th class="num">{t('Triggers')}</th>
              <th class="num">{t('Errors')}</th>
              <th class="num">{t('Mean / p99 µs')}</th>
              <th>{t('Enabled')}</th>
            </tr>
          </thead>
          <tbody>
            {list.data?.items.map((r) => (
              <tr key={r.id}>
                <td>
                  <Link to={`rules/${encodeURIComponent(r.id)}`}>{r.name}</Link>
                  {r.compile_error && <span class="tag bad" title={r.compile_error}>{t('does not compile')}</span>}
                </td>
                <td>{t(r.action_type)}</td>
                <td>{r.device_id ?? r.product_id ?? t('every device')}</td>
                <td class="num">{r.stats.runs}</td>
                <td class="num">{r.stats.triggers}</td>
                <td class="num" title={r.stats.last_error?.message ?? ''}>
                  {r.stats.errors}
                </td>
                <td class="num">
                  {Math.round(r.stats.mean_micros)} / {Math.round(r.stats.p99_micros)}
                </td>
                <td>
                  <input
                    type="checkbox"
                    aria-label={t('Enabled')}
                    checked={r.enabled}
                    disabled={!write}
                    onChange={(e) => act(() => patch(`/rules/${encodeURIComponent(r.id)}`, { enabled: e.currentTarget.checked }), t('Saved')).then(list.reload)}
                  />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {list.data?.items.length === 0 && <p class="hint">{t('No rules yet.')}</p>}
      </Card>
    </div>
  );
}
