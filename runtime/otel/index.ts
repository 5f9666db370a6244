/**
 * @module otel — optional OpenTelemetry export of the per-message trace. Active only when
 * OTEL_EXPORTER_OTLP_ENDPOINT is set (the SDK is imported then, so it costs nothing otherwise):
 * each uplink becomes a root span `uplink` and each stage (decode, rule, store, …) a child span,
 * exported over OTLP/HTTP (JSON) in batches.
 */
import type { FluxContext, FluxModule, ComponentHealth } from '../app/context.ts';
import type { MessageTrace, TraceSpan } from '../trace/index.ts';

export interface OtelExport extends FluxModule {
  readonly enabled: boolean;
}

export function createOtelExport(ctx: FluxContext, env: NodeJS.ProcessEnv = process.env): OtelExport {
  const endpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  let shutdown: (() => Promise<void>) | undefined;
  let exported = 0;
  return {
    name: 'otel',
    enabled: Boolean(endpoint),
    async start() {
      if (!endpoint) return;
      const api = await import('@opentelemetry/api');
      const { BasicTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
      const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
      const { resourceFromAttributes } = await import('@opentelemetry/resources');
      // The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT and headers from the environment itself.
      const provider = new BasicTracerProvider({
        resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME || 'flux-iot' }),
        spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter(), { maxQueueSize: 8192, maxExportBatchSize: 512, scheduledDelayMillis: 1000 })],
      });
      const tracer = provider.getTracer('flux-iot');
      const roots = new Map<string, ReturnType<typeof tracer.startSpan>>();
      const MAX_ROOTS = 10_000;
      ctx.trace.observe({
        begin(t: MessageTrace) {
          const root = tracer.startSpan('uplink', {
            startTime: t.received_at,
            attributes: { 'flux.msg_id': t.id, 'flux.device_id': t.device_id, 'flux.product_key': t.product_key, 'flux.transport': t.transport, 'messaging.destination.name': t.topic, 'messaging.message.body.size': t.bytes },
          });
          root.end(t.received_at);
          exported++;
          if (roots.size >= MAX_ROOTS) roots.delete(roots.keys().next().value as string);
          roots.set(t.id, root);
        },
        span(t: MessageTrace, s: TraceSpan) {
          const root = roots.get(t.id);
          if (!root) return;
          const parent = api.trace.setSpan(api.context.active(), root);
          const attributes: Record<string, string | number | boolean> = { 'flux.msg_id': t.id, 'flux.device_id': t.device_id };
          for (const [k, v] of Object.entries(s.detail ?? {})) {
            if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') attributes[`flux.${k}`] = v;
          }
          const span = tracer.startSpan(s.stage, { startTime: s.at - (s.took_ms ?? 0), attributes }, parent);
          if (!s.ok) span.setStatus({ code: api.SpanStatusCode.ERROR, message: s.error });
          span.end(s.at);
          exported++;
        },
      });
      shutdown = async () => {
        ctx.trace.observe(undefined);
        await provider.shutdown();
      };
      ctx.log.info({ endpoint }, 'exporting message traces over OTLP');
    },
    async stop() {
      const s = shutdown;
      shutdown = undefined;
      await s?.();
    },
    health(): ComponentHealth {
      return { ok: true, enabled: Boolean(endpoint), spans: exported };
    },
  };
}
