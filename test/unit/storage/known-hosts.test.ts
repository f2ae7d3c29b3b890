import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { findKnownHostKeys, knownHostsName } from '../../../src/storage/sftp/known-hosts.js';

const KEY_A = 'AAAAC3NzaC1lZDI1NTE5AAAAIKeyA';
const KEY_B = 'AAAAC3NzaC1lZDI1NTE5AAAAIKeyB';

function hashed(name: string): string {
  const salt = randomBytes(20);
  return `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
}

describe('findKnownHostKeys', () => {
  it('names port 22 bare and other ports as [host]:port, lower-cased', () => {
    expect(knownHostsName('Example.ORG', 22)).toBe('example.org');
    expect(knownHostsName('example.org', 2222)).toBe('[example.org]:2222');
  });

  it.each([
    ['plain name, port 22', 'sftp.example.org ssh-ed25519 KEY', 'sftp.example.org', 22, true],
    [
      'plain name does not match another port',
      'sftp.example.org ssh-ed25519 KEY',
      'sftp.example.org',
      2222,
      false,
    ],
    ['[host]:port', '[sftp.example.org]:2222 ssh-ed25519 KEY', 'sftp.example.org', 2222, true],
    [
      '[host]:port does not match port 22',
      '[sftp.example.org]:2222 ssh-ed25519 KEY',
      'sftp.example.org',
      22,
      false,
    ],
    ['comma list', 'a.example,sftp.example.org,10.0.0.1 ssh-ed25519 KEY', 'sftp.example.org', 22, true],
    ['wildcard', '*.example.org ssh-ed25519 KEY', 'sftp.example.org', 22, true],
    ['question mark', 'sftp?.example.org ssh-ed25519 KEY', 'sftp1.example.org', 22, true],
    ['negation wins', '*.example.org,!sftp.example.org ssh-ed25519 KEY', 'sftp.example.org', 22, false],
    ['case-insensitive', 'SFTP.Example.Org ssh-ed25519 KEY', 'sftp.example.org', 22, true],
    ['dots are literal', 'sftp.example.org ssh-ed25519 KEY', 'sftpXexample.org', 22, false],
    ['comment line', '# sftp.example.org ssh-ed25519 KEY', 'sftp.example.org', 22, false],
    ['malformed line', 'sftp.example.org ssh-ed25519', 'sftp.example.org', 22, false],
  ])('%s', (_name, line, host, port, matches) => {
    const found = findKnownHostKeys(line.replace('KEY', KEY_A), host, port);
    expect(found.keys.length > 0).toBe(matches);
  });

  it('matches hashed entries for the bare name and for [host]:port', () => {
    const text = [
      `${hashed('sftp.example.org')} ssh-ed25519 ${KEY_A}`,
      `${hashed('[sftp.example.org]:2222')} ecdsa-sha2-nistp256 ${KEY_B}`,
    ].join('\n');
    expect(findKnownHostKeys(text, 'sftp.example.org', 22).keys).toMatchObject([
      { keyBase64: KEY_A, lineNumber: 1 },
    ]);
    expect(findKnownHostKeys(text, 'sftp.example.org', 2222).keys).toMatchObject([
      { keyType: 'ecdsa-sha2-nistp256', keyBase64: KEY_B, lineNumber: 2 },
    ]);
    expect(findKnownHostKeys(text, 'other.example.org', 22).keys).toEqual([]);
  });

  it('keeps several keys per host, separates @revoked, ignores @cert-authority and unknown markers', () => {
    const text = [
      `sftp.example.org ssh-ed25519 ${KEY_A}`,
      `sftp.example.org ecdsa-sha2-nistp256 ${KEY_B}`,
      `@revoked sftp.example.org ssh-ed25519 ${KEY_B}`,
      `@cert-authority *.example.org ssh-ed25519 ${KEY_A}`,
      `@strange sftp.example.org ssh-ed25519 ${KEY_A}`,
    ].join('\r\n');
    const found = findKnownHostKeys(text, 'sftp.example.org', 22);
    expect(found.keys.map((key) => key.keyType)).toEqual(['ssh-ed25519', 'ecdsa-sha2-nistp256']);
    expect(found.revoked).toMatchObject([{ keyBase64: KEY_B, lineNumber: 3 }]);
  });
});
