/** The two masking steps every log line goes through, on their own. */
import { describe, expect, it } from 'vitest';
import { Secret } from '../../../src/config/index.js';
import { maskSecretFields, redactSecrets } from '../../../src/log/index.js';
import { maskSecretFieldsInLine } from '../../../src/log/mask-secret-fields.js';

describe('redactSecrets', () => {
  it('masks every occurrence of every given value, raw and JSON-escaped', () => {
    const secret = 'pa"ss\\word';
    const line = JSON.stringify({ msg: `a ${secret} b ${secret}`, other: 'pa"ss\\word' });
    const out = redactSecrets(line, [secret]);
    expect(JSON.parse(out)).toEqual({ msg: 'a [REDACTED] b [REDACTED]', other: '[REDACTED]' });
    expect(redactSecrets(`raw ${secret}`, [secret])).toBe('raw [REDACTED]');
  });

  it('skips values under three characters rather than wreck every line', () => {
    expect(redactSecrets('{"msg":"ab abc"}', ['ab'])).toBe('{"msg":"ab abc"}');
    expect(redactSecrets('{"msg":"ab abc"}', ['abc'])).toBe('{"msg":"ab [REDACTED]"}');
  });

  it('masks PEM and OpenSSH private key blocks, whole or cut short', () => {
    const pem = '-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----';
    const openssh = '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1r\n-----END OPENSSH PRIVATE KEY-----';
    const line = JSON.stringify({
      msg: `k1 ${pem} k2 ${openssh} end`,
      cut: `${openssh.slice(0, 50)}`,
      next: 'kept',
    });
    expect(JSON.parse(redactSecrets(line, []))).toEqual({
      msg: 'k1 [REDACTED] k2 [REDACTED] end',
      cut: '[REDACTED]',
      next: 'kept',
    });
  });

  it('leaves public keys and ordinary lines alone', () => {
    const line = JSON.stringify({ msg: '-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----' });
    expect(redactSecrets(line, ['unrelated'])).toBe(line);
  });
});

describe('maskSecretFields', () => {
  it('masks secret-named fields at any depth and in lists, and copies instead of changing', () => {
    const input = {
      password: 'a',
      nested: { list: [{ keyPassphrase: 'b', private_key: Buffer.from('c'), name: 'kept' }] },
      PRIVATEKEY: 'd',
      passwordEnv: 'NAME_OF_VAR',
    };
    expect(maskSecretFields(input)).toEqual({
      password: '[REDACTED]',
      nested: { list: [{ keyPassphrase: '[REDACTED]', private_key: '[REDACTED]', name: 'kept' }] },
      PRIVATEKEY: '[REDACTED]',
      // The name of a variable is not a secret.
      passwordEnv: 'NAME_OF_VAR',
    });
    expect(input.password).toBe('a');
  });

  it('survives cycles and leaves class instances to their own serialisation', () => {
    const cyclic: Record<string, unknown> = { password: 'x' };
    cyclic.self = cyclic;
    expect(maskSecretFields(cyclic)).toEqual({ password: '[REDACTED]', self: '[Circular]' });
    const secret = new Secret('s3cret');
    expect(maskSecretFields({ value: secret }).value).toBe(secret);
    expect(JSON.stringify({ value: secret })).toBe('{"value":"[REDACTED]"}');
  });

  it('works on a serialised line, and leaves other lines byte for byte', () => {
    const plain = '{"level":30,"msg":"no secrets here"}\n';
    expect(maskSecretFieldsInLine(plain)).toBe(plain);
    expect(maskSecretFieldsInLine('{"level":30,"a":{"password":"x"}}\n')).toBe(
      '{"level":30,"a":{"password":"[REDACTED]"}}\n',
    );
    expect(maskSecretFieldsInLine('not json "password": x')).toBe('not json "password": x');
  });
});
