import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireSshdOrSkip, type SshdFixture, startSshd } from '../support/sshd-fixture.js';

const run = requireSshdOrSkip();

describe.skipIf(!run)('sshd fixture', () => {
  let sshd: SshdFixture;

  beforeAll(async () => {
    sshd = await startSshd();
    await writeFile(join(sshd.rootDir, 'hello.txt'), 'hello from sshd\n');
  });
  afterAll(async () => {
    await sshd?.stop();
  });

  it('serves its tree over SFTP to a client that checks the host key', async () => {
    const seenFingerprints: string[] = [];
    const client = new ssh2.Client();
    const { names, content } = await new Promise<{ names: string[]; content: string }>((resolve, reject) => {
      client
        .on('ready', () => {
          client.sftp((err, sftp) => {
            if (err) return reject(err);
            sftp.readdir(sshd.rootDir, (listErr, list) => {
              if (listErr) return reject(listErr);
              sftp.readFile(join(sshd.rootDir, 'hello.txt'), (readErr, data) => {
                if (readErr) return reject(readErr);
                resolve({ names: list.map((entry) => entry.filename), content: data.toString() });
              });
            });
          });
        })
        .on('error', reject)
        .connect({
          host: sshd.host,
          port: sshd.port,
          username: sshd.username,
          privateKey: readFileSync(sshd.clientKeyPath),
          hostVerifier: (key: Buffer) => {
            const fingerprint = `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
            seenFingerprints.push(fingerprint);
            return fingerprint === sshd.hostKeyFingerprint;
          },
        });
    }).finally(() => client.end());

    expect(seenFingerprints).toEqual([sshd.hostKeyFingerprint]);
    expect(names).toEqual(['hello.txt']);
    expect(content).toBe('hello from sshd\n');
  });

  it('refuses a client whose host-key check fails', async () => {
    const client = new ssh2.Client();
    const error = await new Promise<Error>((resolve) => {
      client.on('ready', () => resolve(new Error('unexpectedly connected'))).on('error', resolve);
      client.connect({
        host: sshd.host,
        port: sshd.port,
        username: sshd.username,
        privateKey: readFileSync(sshd.clientKeyPath),
        hostVerifier: () => false,
      });
    }).finally(() => client.end());
    expect(error.message).toMatch(/host/i);
  });

  it('stops and starts again on the same port', async () => {
    await sshd.stopServer();
    await sshd.startServer();
    expect(sshd.output()).toContain(`port ${sshd.port}`);
  });
});
