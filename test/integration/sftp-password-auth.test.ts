/**
 * Password login against a real sshd. It needs a system account with a password,
 * so it runs only as root (CI here): a throwaway user is created with useradd and
 * chpasswd and removed afterwards. As any other user the suite is skipped: creating
 * accounts needs root.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../src/config/secret.js';
import { SyncError } from '../../src/errors/index.js';
import { createSftpStorage } from '../../src/storage/index.js';
import { captureLogger } from '../support/capture-logger.js';
import { fixtureConnection } from '../support/fixture-connection.js';
import { requireSshdOrSkip, type SshdFixture, startSshd } from '../support/sshd-fixture.js';

const isRoot = process.getuid?.() === 0;
const run = requireSshdOrSkip() && isRoot;

describe.skipIf(!run)('sftp storage: password authentication (root only: it creates a system user)', () => {
  const username = `fsl-pw-${randomBytes(3).toString('hex')}`;
  const password = `pw-${randomBytes(9).toString('base64url')}`;
  let sshd: SshdFixture;
  let userCreated = false;

  beforeAll(async () => {
    execFileSync('useradd', ['-M', '-s', '/bin/sh', username], { stdio: 'pipe' });
    userCreated = true;
    execFileSync('chpasswd', [], { input: `${username}:${password}\n`, stdio: ['pipe', 'pipe', 'pipe'] });
    sshd = await startSshd({ extraConfig: ['PasswordAuthentication yes'] });
  });
  afterAll(async () => {
    await sshd?.stop();
    if (userCreated) execFileSync('userdel', [username], { stdio: 'pipe' });
  });

  it('logs in with the password and never logs it; a wrong one is E_AUTH', async () => {
    const captured = captureLogger('trace');
    const storage = createSftpStorage({
      connection: fixtureConnection(sshd, {
        username,
        auth: { kind: 'password', password: new Secret(password) },
      }),
      log: captured.log,
    });
    const wrong = createSftpStorage({
      connection: fixtureConnection(sshd, {
        username,
        retries: 2,
        auth: { kind: 'password', password: new Secret(`${password}-wrong`) },
      }),
      log: captured.log,
    });
    try {
      expect((await storage.stat('/')).type).toBe('dir');
      const err = await wrong.stat('/').then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(err).toBeInstanceOf(SyncError);
      expect((err as SyncError).code).toBe('E_AUTH');
      expect((err as SyncError).context.hint).toContain('password');
      expect(JSON.stringify(err)).not.toContain(password);
      // Not retried: one failed login in sshd's log, not three.
      expect(sshd.output().match(new RegExp(`Failed password for ${username}`, 'g'))).toHaveLength(1);
      expect(JSON.stringify(captured.lines())).not.toContain(password);
    } finally {
      await storage.close();
      await wrong.close();
    }
  });
});
