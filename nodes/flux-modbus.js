// Node-RED finds node files by their .js name and pairs them with the .html beside them; the code is TypeScript.
export { default } from './flux-modbus.ts';
