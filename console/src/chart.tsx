/** Time-series charts on uPlot: a static chart (history, reports) and a live one fed by /api/ws. */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { useEffect, useRef } from 'preact/hooks';
import { feedUrl } from './api.ts';
import { t } from './i18n.ts';

const COLORS = ['#2f6fde', '#e8590c', '#2b8a3e', '#ae3ec9', '#c92a2a', '#1098ad', '#f08c00', '#5c7cfa'];

function options(labels: string[], width: number, height: number): uPlot.Options {
  return {
    width,
    height,
    cursor: { drag: { x: true, y: false } },
    scales: { x: { time: true } },
    legend: { show: true },
    series: [{}, ...labels.map((label, i) => ({ label, stroke: COLORS[i % COLORS.length], width: 1.5, spanGaps: true, points: { show: false } }))],
    axes: [{}, { size: 60 }],
  };
}

/** x: seconds since the epoch; one array per series, aligned on x. */
export type ChartData = [number[], ...(number | null)[][]];

export function Chart(p: { labels: string[]; data: ChartData; height?: number; class?: string }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const key = p.labels.join('\u0000');
  useEffect(() => {
    const box = el.current!;
    const u = new uPlot(options(p.labels, box.clientWidth || 600, p.height ?? 260), p.data as uPlot.AlignedData, box);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: box.clientWidth || 600, height: p.height ?? 260 }));
    ro.observe(box);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [key]);
  useEffect(() => {
    plot.current?.setData(p.data as uPlot.AlignedData);
  }, [p.data]);
  return <div ref={el} class={`chart ${p.class ?? ''}`} />;
}

/** Counters the console benchmark reads (bench/console.bench.ts): live messages received and chart redraws. */
export const liveStats = { messages: 0, draws: 0 };
(globalThis as unknown as { __fluxLive: typeof liveStats }).__fluxLive = liveStats;

/**
 * The live chart of one device: its numeric telemetry from /api/ws, the newest `windowS` seconds,
 * redrawn at most every `minDrawMs` (10 Hz and more) on animation frames, so a fast device does not
 * cost a redraw per message.
 */
export function LiveChart(p: { device: string; windowS?: number; minDrawMs?: number; onValues?(values: Record<string, unknown>, ts: number): void }) {
  const el = useRef<HTMLDivElement>(null);
  const status = useRef<HTMLSpanElement>(null);
  const cb = useRef(p.onValues);
  cb.current = p.onValues;
  useEffect(() => {
    const box = el.current!;
    const windowS = p.windowS ?? 120;
    const minDraw = p.minDrawMs ?? 50;
    const metrics: string[] = [];
    const xs: number[] = [];
    const ys: (number | null)[][] = [];
    let u: uPlot | null = null;
    let dirty = false;
    let lastDraw = 0;
    let raf = 0;
    const build = () => {
      u?.destroy();
      u = new uPlot(options(metrics, box.clientWidth || 600, 260), [xs, ...ys] as uPlot.AlignedData, box);
    };
    const frame = (now: number) => {
      raf = requestAnimationFrame(frame);
      if (!dirty || now - lastDraw < minDraw || !u) return;
      dirty = false;
      lastDraw = now;
      const cut = xs.length ? xs[xs.length - 1]! - windowS : 0;
      let drop = 0;
      while (drop < xs.length && xs[drop]! < cut) drop++;
      if (drop) {
        xs.splice(0, drop);
        for (const s of ys) s.splice(0, drop);
      }
      u.setData([xs, ...ys] as uPlot.AlignedData);
      liveStats.draws++;
    };
    raf = requestAnimationFrame(frame);
    let ws: WebSocket | null = null;
    let closed = false;
    let retry: ReturnType<typeof setTimeout> | undefined;
    const connect = () => {
      ws = new WebSocket(feedUrl({ device: p.device, events: 'telemetry' }));
      ws.onopen = () => status.current && (status.current.textContent = t('live'));
      ws.onclose = () => {
        if (status.current) status.current.textContent = t('disconnected');
        if (!closed) retry = setTimeout(connect, 2000);
      };
      ws.onmessage = (e) => {
        let ev: { type?: string; ts?: number; values?: Record<string, unknown> };
        try {
          ev = JSON.parse(String(e.data));
        } catch {
          return;
        }
        if (ev.type !== 'telemetry' || !ev.values) return;
        liveStats.messages++;
        const ts = typeof ev.ts === 'number' ? ev.ts : Date.now();
        cb.current?.(ev.values, ts);
        let added = false;
        for (const [k, v] of Object.entries(ev.values)) {
          if (typeof v !== 'number' || metrics.includes(k) || metrics.length >= COLORS.length) continue;
          metrics.push(k);
          ys.push(xs.map(() => null));
          added = true;
        }
        xs.push(ts / 1000);
        metrics.forEach((m, i) => {
          const v = ev.values![m];
          ys[i]!.push(typeof v === 'number' ? v : null);
        });
        // Bounded: at most 20,000 points kept whatever the rate.
        if (xs.length > 20_000) {
          xs.shift();
          for (const s of ys) s.shift();
        }
        if (added || !u) build();
        dirty = true;
      };
    };
    connect();
    build();
    const ro = new ResizeObserver(() => u?.setSize({ width: box.clientWidth || 600, height: 260 }));
    ro.observe(box);
    return () => {
      closed = true;
      clearTimeout(retry);
      cancelAnimationFrame(raf);
      ro.disconnect();
      ws?.close();
      u?.destroy();
    };
  }, [p.device]);
  return (
    <div>
      <span ref={status} class="live-status">
        …
      </span>
      <div ref={el} class="chart live-chart" data-testid="live-chart" />
    </div>
  );
}

/** Turns `{ metric, ts, value|agg }` items into chart series, one per metric (or per label(item)). */
export function toSeries(items: { metric: string; ts: number; [k: string]: unknown }[], field: string, label: (it: { metric: string }) => string = (it) => it.metric): { labels: string[]; data: ChartData } {
  const labels: string[] = [];
  const byTs = new Map<number, Map<string, number | null>>();
  for (const it of items) {
    const l = label(it);
    if (!labels.includes(l)) labels.push(l);
    const v = it[field];
    let row = byTs.get(it.ts);
    if (!row) byTs.set(it.ts, (row = new Map()));
    row.set(l, typeof v === 'number' ? v : v === null || v === undefined ? null : Number(v));
  }
  const ts = [...byTs.keys()].sort((a, b) => a - b);
  const data: ChartData = [ts.map((x) => x / 1000), ...labels.map((l) => ts.map((x) => byTs.get(x)!.get(l) ?? null))];
  return { labels, data };
}
