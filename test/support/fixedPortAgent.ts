/**
 * An HTTPS agent that dials 127.0.0.1:`port` whatever host and port a request names, with SNI
 * `localhost`: the `azure-iothub` `Registry` always dials `https://{HostName}:443`
 * (docs/iot-hub.md, "SDK behaviour twinlog accommodates"), so tests point it at a gateway on a free port this way.
 */
import { Agent, type AgentOptions } from 'node:https';
import type { Duplex } from 'node:stream';

export class FixedPortAgent extends Agent {
  constructor(
    private readonly port: number,
    options: AgentOptions,
  ) {
    super(options);
  }
  override createConnection(options: object, callback?: (err: Error | null, socket: Duplex) => void): Duplex {
    const create = Agent.prototype.createConnection as (
      this: Agent,
      o: object,
      cb?: (err: Error | null, socket: Duplex) => void,
    ) => Duplex;
    return create.call(this, { ...options, host: '127.0.0.1', port: this.port, servername: 'localhost' }, callback);
  }
}
