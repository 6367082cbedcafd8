/**
 * Start a server listening and hand back its port and a `close` that also forgets it: the one
 * listen step of the REST and MQTT gateways, which differ only in the server they pass and how
 * they close it.
 */
import type { AddressInfo, Server } from 'node:net';

export interface Listening<S extends Server> {
  readonly port: number;
  readonly server: S;
  close(): Promise<void>;
}

/**
 * @example
 * const listening = await listenOn(server, 0, '127.0.0.1', servers, closeServer)
 */
export async function listenOn<S extends Server>(
  server: S,
  port: number,
  host: string | undefined,
  servers: Set<S>,
  closeServer: (server: S) => Promise<void>,
): Promise<Listening<S>> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  servers.add(server);
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close: async () => {
      servers.delete(server);
      await closeServer(server);
    },
  };
}
