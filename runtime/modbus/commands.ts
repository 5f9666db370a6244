/**
 * Commands to a polled Modbus device (docs/modbus.md): `write` ({property, value} or {values}, in
 * the product's register map) and `read` (a poll now, answered with the values). A connection that
 * is down answers `offline`; a slave's exception or silence is a FluxError naming device and unit.
 */
import { randomUUID } from 'node:crypto';
import { FluxError } from '../errors/index.ts';
import type { Logger } from '../log/index.ts';
import type { Endpoint } from './endpoint.ts';
import type { ModbusError } from './frame.ts';
import type { PolledDevice } from './sync.ts';
import { planWrites } from './writes.ts';

export interface ModbusCommandResult {
  status: 'delivered' | 'offline';
  id: string;
  deviceId: string;
  transport: 'modbus';
  bytes: number;
  encoding: 'modbus';
  reason?: string;
  /** what was written, or (command `read`) the values read */
  values?: Record<string, number | boolean>;
}

/** What a command needs of the master's unit of a device. */
export interface CommandTarget {
  cfg: PolledDevice;
  ep: Endpoint;
  /** a poll of it is running */
  busy: boolean;
  /** polled by this node (cluster mode: it holds the endpoint's lease) */
  polled: boolean;
}

export interface CommandDeps<U extends CommandTarget> {
  /** the unit of a polled device (reads the registry again once before it says there is none) */
  unitFor(deviceId: string): Promise<U>;
  /** polls the unit now: its values, appended as an uplink like any poll's */
  poll(u: U): Promise<Record<string, number | boolean>>;
  log: Logger;
}

export function modbusCommands<U extends CommandTarget>(d: CommandDeps<U>): (deviceId: string, command: string, params: unknown) => Promise<ModbusCommandResult> {
  function toFluxError(u: U, what: string, err: ModbusError): FluxError {
    const where = `device '${u.cfg.deviceId}' (unit ${u.cfg.unit} at ${u.ep.key})`;
    if (err.reason === 'exception') return new FluxError('modbus_exception', `${where} refused the ${what}: Modbus ${err.message}`, 502, { exception_code: err.exceptionCode });
    if (err.reason === 'timeout') return new FluxError('modbus_timeout', `${where} did not answer the ${what} within ${u.cfg.config.timeout_ms} ms`, 504);
    return new FluxError('modbus_error', `${where}: the ${what} failed: ${err.message}`, 502);
  }

  async function write(u: U, params: unknown): Promise<ModbusCommandResult> {
    const requests = planWrites(u.cfg.registers, u.cfg.identity.product.key, params);
    const id = randomUUID();
    let bytes = 0;
    const values: Record<string, number | boolean> = {};
    for (const w of requests) {
      try {
        await u.ep.request(u.cfg.unit, w.pdu, u.cfg.config.timeout_ms);
      } catch (err) {
        const e = err as ModbusError;
        if (e.reason === 'connection' || e.reason === 'closed') return { status: 'offline', id, deviceId: u.cfg.deviceId, transport: 'modbus', bytes, encoding: 'modbus', reason: e.message };
        throw toFluxError(u, `write of ${w.property}`, e);
      }
      bytes += w.pdu.length;
      values[w.property] = w.value;
    }
    d.log.info({ deviceId: u.cfg.deviceId, id, values }, 'modbus write delivered');
    // the new value shows at once instead of an interval later
    if (!u.busy && u.polled) d.poll(u).catch(() => {});
    return { status: 'delivered', id, deviceId: u.cfg.deviceId, transport: 'modbus', bytes, encoding: 'modbus', values };
  }

  return async function command(deviceId, command, params) {
    const u = await d.unitFor(deviceId);
    if (command === 'write') return write(u, params);
    if (command === 'read') {
      if (u.busy) throw new FluxError('busy', `device '${deviceId}' is being polled right now; try again`, 409);
      try {
        const values = await d.poll(u);
        return { status: 'delivered', id: randomUUID(), deviceId, transport: 'modbus', bytes: 0, encoding: 'modbus', values };
      } catch (err) {
        const e = err as ModbusError;
        if (e.reason === 'connection' || e.reason === 'closed') return { status: 'offline', id: randomUUID(), deviceId, transport: 'modbus', bytes: 0, encoding: 'modbus', reason: e.message };
        throw toFluxError(u, 'read', e);
      }
    }
    throw new FluxError('unknown_command', `Modbus devices take the commands 'write' and 'read', not '${command}'`, 422);
  };
}
