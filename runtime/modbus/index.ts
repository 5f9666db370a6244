/**
 * @module modbus — FLUX as a Modbus master: Modbus TCP and RTU-over-TCP endpoints polled by the
 * register maps of the registry (`transport.modbus` on products and devices), values on the device
 * bus, writes as device commands. docs/modbus.md explains the settings and the choices.
 */
import type { ComponentHealth, FluxModule } from '../app/context.ts';
import { createModbusMaster, type ModbusMaster, type ModbusMasterDeps } from './master.ts';

export { createModbusMaster, type ModbusMaster, type ModbusMasterDeps, type UnitStatus, type EndpointLeases } from './master.ts';
export type { ModbusCommandResult } from './commands.ts';
export { createEndpoint, endpointKey, type Endpoint, type EndpointAddress, type EndpointOptions, type EndpointStats, type ModbusMode, type RequestGroup } from './endpoint.ts';
export { decodeBlock, decodeValue, encodeValue, normalizeRegister, planReads, TYPE_WIDTH, type ReadBlock, type Register, type RegisterSpec, type RegisterType } from './codec.ts';
export {
  ModbusError, checkResponse, crc16, exceptionName, mbapFrame, rtuFrame, readRequest, writeCoilsRequest, writeRegistersRequest, MbapReader, RtuReader,
  MAX_READ_REGISTERS, MAX_READ_BITS, type FailureReason, type ReadFunction,
} from './frame.ts';
export { productModbusSchema, deviceModbusSchema, productTransportSchema, deviceTransportSchema, registerSchema, undeclaredProperties, type ProductModbus, type DeviceModbus } from './config.ts';

/** The master as a module of the composition root (started after the broker and ingress, stopped before them). */
export function modbusModule(deps: ModbusMasterDeps): FluxModule & { master: ModbusMaster } {
  const master = createModbusMaster(deps);
  return {
    name: 'modbus',
    master,
    start: () => master.start(),
    stop: () => master.stop(),
    health(): ComponentHealth {
      const s = master.status();
      let units = 0;
      let online = 0;
      for (const e of s.endpoints) {
        units += e.units.length;
        online += e.units.filter((u) => u.online).length;
      }
      return { ok: true, endpoints: s.endpoints.length, devices: units, online };
    },
  };
}
