/**
 * A loopback TCP proxy in front of a server that counts the connections it
 * accepts (so a test can tell whether a client retried), and can misbehave like a
 * network: drop every new connection at once, or freeze (stop passing bytes either
 * way without closing anything, like a dead peer behind a silent firewall).
 */
import { createConnection, createServer, type Socket } from 'node:net';

export type ProxyMode = 'forward' | 'drop' | 'freeze';

export interface CountingTcpProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** 'forward' passes bytes; 'drop' closes new connections at once; 'freeze' stops passing bytes on all of them. */
  setMode(mode: ProxyMode): void;
  close(): Promise<void>;
}

export async function startCountingTcpProxy(
  targetPort: number,
  targetHost = '127.0.0.1',
): Promise<CountingTcpProxy> {
  let mode: ProxyMode = 'forward';
  let connections = 0;
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  };

  // Half-open allowed: a frozen proxy must not answer a FIN either, as a dead peer would not.
  const server = createServer({ allowHalfOpen: true }, (client) => {
    connections += 1;
    track(client);
    if (mode === 'drop') {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: targetHost, port: targetPort, allowHalfOpen: true });
    track(upstream);
    const relay = (from: Socket, to: Socket): void => {
      from.on('data', (data: Buffer) => {
        // Frozen: bytes are swallowed, nothing closes, nobody is told.
        if (mode !== 'freeze') to.write(data);
      });
      from.on('end', () => {
        if (mode !== 'freeze') to.end();
      });
      from.on('close', () => {
        if (mode !== 'freeze') to.destroy();
      });
    };
    relay(client, upstream);
    relay(upstream, client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address() as { port: number };
  return {
    port: address.port,
    get connections() {
      return connections;
    },
    setMode(next) {
      mode = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
