/** /api/modbus: what the Modbus master polls, per endpoint (connection, counters) and per device (online, last error). */
import type { ModbusMaster } from '../modbus/index.ts';
import type { RouteTable } from './routes.ts';

export function modbusRoutes(modbus: ModbusMaster, routes: RouteTable): void {
  routes
    .add({
      method: 'get', path: '/modbus', tag: 'modbus', role: 'viewer', summary: 'Modbus endpoints the master polls: connection, requests, errors, timeouts, in flight; each device with its unit, online state, consecutive failures and last error',
      returns: '`{ endpoints: [{ endpoint, connected, requests, errors, timeouts, in_flight, queued, connects, last_error, units: [{ device_id, unit, online, consecutive_failures, last_error, last_ok, polls, overruns }] }] }`',
      handler: () => modbus.status(),
    })
    .add({
      method: 'post', path: '/modbus/sync', tag: 'modbus', role: 'operator', summary: 'Read the registry now for Modbus devices to poll (otherwise read every FLUX_MODBUS_SYNC_MS)',
      returns: 'the same as GET /api/modbus',
      handler: async () => {
        await modbus.sync();
        return modbus.status();
      },
    });
}
