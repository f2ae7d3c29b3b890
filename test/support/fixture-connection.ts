import type { SftpConnectionConfig } from '../../src/config/config-types.js';
import type { SshdFixture } from './sshd-fixture.js';

/** Connection settings for the test sshd: key auth, its known_hosts, short deadlines so faults show fast. */
export function fixtureConnection(
  sshd: SshdFixture,
  overrides: Partial<SftpConnectionConfig> = {},
): SftpConnectionConfig {
  return {
    host: sshd.host,
    port: sshd.port,
    username: sshd.username,
    auth: { kind: 'key', privateKeyPath: sshd.clientKeyPath },
    hostKey: { kind: 'known_hosts', knownHostsPath: sshd.knownHostsPath },
    connections: 2,
    connectTimeoutMs: 5_000,
    operationTimeoutMs: 5_000,
    keepaliveIntervalMs: 2_000,
    retries: 0,
    readConcurrency: 16,
    chunkSizeBytes: 32 * 1024,
    ...overrides,
  };
}
