/**
 * A loopback TCP proxy that misbehaves on cue, like a real network: it counts the
 * bytes going each way, cuts the connection once a given number of bytes has passed
 * in one direction (mid-handshake, mid-listing, mid-file), flips a bit in transit, stalls new connections
 * (accepts them, then never connects upstream and never sends a byte), or freezes
 * live ones (nothing passes, nothing closes). A sibling of counting-tcp-proxy.ts.
 */
import { createConnection, createServer, type Socket } from 'node:net';

/** `down`: server → client (what a download reads); `up`: client → server. */
export type Direction = 'down' | 'up';

export interface CutPlan {
  direction: Direction;
  /** Bytes let through in `direction`, counted from the moment the cut is armed, before every open connection is cut. */
  afterBytes: number;
}

interface Pair {
  client: Socket;
  upstream: Socket;
  /** Cut: nothing more passes either way. */
  dead: boolean;
}

export interface FaultTcpProxy {
  readonly port: number;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Bytes passed each way since the proxy started. */
  readonly bytes: Readonly<Record<Direction, number>>;
  /** Connections cut so far by an armed cut. */
  readonly cuts: number;
  /** Arms a one-shot cut; after it fires the proxy forwards again (a flaky link, not a dead one). */
  cutAfter(plan: CutPlan): void;
  /** Flips one bit of the byte at `afterBytes` (counted from now) in `direction`, once: a link that corrupts data. */
  corruptAt(plan: CutPlan): void;
  /** New connections are accepted and then left silent: no upstream, no byte, no close. */
  stallNewConnections(stall: boolean): void;
  /** Live connections stop passing bytes either way without closing (a dead peer behind a silent firewall). */
  freeze(frozen: boolean): void;
  close(): Promise<void>;
}

export async function startFaultTcpProxy(
  targetPort: number,
  targetHost = '127.0.0.1',
): Promise<FaultTcpProxy> {
  const sockets = new Set<Socket>();
  const pairs = new Set<Pair>();
  const bytes: Record<Direction, number> = { down: 0, up: 0 };
  let connections = 0;
  let cuts = 0;
  let stall = false;
  let frozen = false;
  let cut: { direction: Direction; remainingBytes: number } | undefined;
  let corrupt: { direction: Direction; remainingBytes: number } | undefined;

  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  };
  const cutEverything = (): void => {
    const victims = [...pairs];
    pairs.clear();
    // Dead at once: a chunk already queued behind the cut must not slip through and corrupt the stream.
    for (const pair of victims) pair.dead = true;
    cuts += victims.length;
    // Let the partial chunk leave before the reset, as a link dying mid-stream would.
    setImmediate(() => {
      for (const pair of victims) {
        pair.client.destroy();
        pair.upstream.destroy();
      }
    });
  };

  const server = createServer({ allowHalfOpen: true }, (client) => {
    connections += 1;
    track(client);
    if (stall) return;
    const upstream = createConnection({ host: targetHost, port: targetPort, allowHalfOpen: true });
    track(upstream);
    const pair: Pair = { client, upstream, dead: false };
    pairs.add(pair);
    const relay = (from: Socket, to: Socket, direction: Direction): void => {
      from.on('data', (data: Buffer) => {
        if (frozen || pair.dead) return;
        let chunk = data;
        if (corrupt && corrupt.direction === direction) {
          if (chunk.length > corrupt.remainingBytes) {
            chunk = Buffer.from(chunk);
            const at = corrupt.remainingBytes;
            chunk[at] = (chunk[at] ?? 0) ^ 0x01;
            corrupt = undefined;
          } else corrupt.remainingBytes -= chunk.length;
        }
        if (cut && cut.direction === direction) {
          if (chunk.length >= cut.remainingBytes) {
            chunk = chunk.subarray(0, cut.remainingBytes);
            cut = undefined;
            if (chunk.length > 0) to.write(chunk);
            bytes[direction] += chunk.length;
            cutEverything();
            return;
          }
          cut.remainingBytes -= chunk.length;
        }
        bytes[direction] += chunk.length;
        to.write(chunk);
      });
      from.on('end', () => {
        if (!frozen) to.end();
      });
      from.on('close', () => {
        if (frozen) return;
        to.destroy();
        pairs.delete(pair);
      });
    };
    relay(client, upstream, 'up');
    relay(upstream, client, 'down');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address() as { port: number };
  return {
    port: address.port,
    get connections() {
      return connections;
    },
    get bytes() {
      return { ...bytes };
    },
    get cuts() {
      return cuts;
    },
    cutAfter(plan) {
      cut = { direction: plan.direction, remainingBytes: plan.afterBytes };
    },
    corruptAt(plan) {
      corrupt = { direction: plan.direction, remainingBytes: plan.afterBytes };
    },
    stallNewConnections(next) {
      stall = next;
    },
    freeze(next) {
      frozen = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
