/** OpenTelemetry: with OTEL_EXPORTER_OTLP_ENDPOINT set, a device's uplink is exported as spans to a real OTLP/HTTP receiver. */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import mqtt from 'mqtt';
import { startFlux, type FluxProcess } from '../helpers/flux-process.ts';

interface OtlpSpan {
  name: string;
  traceId: string;
  parentSpanId?: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: string | number } }[];
}

describe('OpenTelemetry export', function () {
  this.timeout(60_000);
  let flux: FluxProcess;
  let receiver: http.Server;
  const spans: OtlpSpan[] = [];

  before(async function () {
    receiver = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        if (req.url === '/v1/traces') {
          const doc = JSON.parse(body) as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] };
          for (const rs of doc.resourceSpans) for (const ss of rs.scopeSpans) spans.push(...ss.spans);
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    const port = (receiver.address() as AddressInfo).port;
    flux = await startFlux({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' });
  });

  after(async function () {
    await flux?.stop();
    receiver?.close();
  });

  it('exports an uplink span with the device id, and reports the exporter in health', async function () {
    assert.equal((await flux.api('POST', '/api/products', { key: 'otel', name: 'OTel' })).status, 201);
    const dev = await flux.api('POST', '/api/devices', { id: 'otel_1', product_id: 'otel' });
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${flux.mqtt}`, { username: 'otel_1', password: dev.body.secret, clientId: 'otel_1', reconnectPeriod: 0 });
    await client.publishAsync('/otel/otel_1/properties/report', JSON.stringify({ values: { temperature: 21.5 } }), { qos: 1 });
    await client.endAsync();
    const deadline = Date.now() + 15_000;
    let uplink: OtlpSpan | undefined;
    while (!uplink && Date.now() < deadline) {
      uplink = spans.find((s) => s.name === 'uplink' && s.attributes.some((a) => a.key === 'flux.device_id' && a.value.stringValue === 'otel_1'));
      if (!uplink) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(uplink, `an uplink span arrives at the OTLP receiver (got ${spans.map((s) => s.name).join(', ') || 'nothing'})`);
    const health = await flux.api('GET', '/api/health');
    assert.equal(health.body.components.otel.enabled, true);
  });
});
