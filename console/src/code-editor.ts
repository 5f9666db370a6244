/** CodeMirror 6 for rule scripts (loaded only on the rule page): highlighting, and errors shown at their line and column. */
import { EditorView, basicSetup } from 'codemirror';
import { javascript } from '@codemirror/lang-javascript';
import { setDiagnostics } from '@codemirror/lint';

export interface ScriptEditor {
  value(): string;
  /** marks the error at 1-based line/column (null clears) */
  showError(err: { line: number; column: number; message: string } | null): void;
  destroy(): void;
}

export function createScriptEditor(parent: HTMLElement, doc: string, opts: { readOnly: boolean; onChange?(): void }): ScriptEditor {
  const view = new EditorView({
    doc,
    parent,
    extensions: [
      basicSetup,
      javascript(),
      EditorView.editable.of(!opts.readOnly),
      EditorView.updateListener.of((u) => u.docChanged && opts.onChange?.()),
      EditorView.theme({ '&': { fontSize: '13px', border: '1px solid var(--line)' }, '.cm-scroller': { minHeight: '260px', fontFamily: 'var(--mono)' } }),
    ],
  });
  return {
    value: () => view.state.doc.toString(),
    showError(err) {
      if (!err) {
        view.dispatch(setDiagnostics(view.state, []));
        return;
      }
      const doc = view.state.doc;
      const line = doc.line(Math.min(Math.max(1, err.line), doc.lines));
      const from = Math.min(line.from + Math.max(0, err.column - 1), line.to);
      const to = Math.min(Math.max(from + 1, line.to), doc.length);
      view.dispatch(setDiagnostics(view.state, [{ from, to: Math.max(from, to), severity: 'error', message: err.message }]));
    },
    destroy: () => view.destroy(),
  };
}

/** `syntax error at line 3, column 7: …` → its position. */
export function errorPosition(message: string): { line: number; column: number } | null {
  const m = /line (\d+), column (\d+)/.exec(message);
  return m ? { line: Number(m[1]), column: Number(m[2]) } : null;
}
