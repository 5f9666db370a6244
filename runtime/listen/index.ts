/**
 * @module listen — starts a server listening and turns the usual failures into a ConfigError that
 * names the setting to change (a port in use, a privileged port, an address not of this machine).
 * Every listener of FLUX (HTTP, MQTT, MQTTS) goes through it.
 */
import type net from 'node:net';
import { ConfigError } from '../errors/index.ts';

/** Listens on `port` at `host`; answers the port listened on (0 picks a free one). */
export function listen(server: net.Server, port: number, host: string, variable: string, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new ConfigError(variable, `${what} port ${port} is in use; set ${variable}`));
      else if (err.code === 'EACCES') reject(new ConfigError(variable, `${what} port ${port} needs privileges; set ${variable}`));
      else if (err.code === 'EADDRNOTAVAIL') reject(new ConfigError('FLUX_HOST', `FLUX_HOST=${host} is not an address of this machine`));
      else reject(err);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}
