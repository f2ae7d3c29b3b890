import { describe, expect, it } from 'vitest';
import { SyncError } from '../../../src/errors/index.js';
import { mapSftpError } from '../../../src/storage/sftp/map-sftp-error.js';

const context = { op: 'stat', host: 'feeds@sftp.example.org:22', path: '/outbound/a.csv' };

function statusError(code: number, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('mapSftpError', () => {
  it.each([
    [2, 'No such file', 'E_NOT_FOUND'],
    [3, 'Permission denied', 'E_PERMISSION'],
    [4, 'Failure', 'E_IO'],
    [4, 'No space left on device', 'E_DISK_FULL'],
    [4, 'Disk quota exceeded', 'E_DISK_FULL'],
    [5, 'Bad message', 'E_IO'],
    [6, 'No connection', 'E_CONNECTION'],
    [7, 'Connection lost', 'E_CONNECTION'],
    [8, 'Operation unsupported', 'E_UNSUPPORTED'],
  ])('status %i (%s) is %s, with op, path and host', (code, message, expected) => {
    const mapped = mapSftpError(statusError(code, message), context);
    expect(mapped.code).toBe(expected);
    expect(mapped.context).toMatchObject(context);
    expect(mapped.message).toContain('/outbound/a.csv');
    expect(mapped.message).toContain('feeds@sftp.example.org:22');
    expect(typeof mapped.context.hint).toBe('string');
  });

  it('keeps a server message that says more than the code', () => {
    expect(mapSftpError(statusError(4, 'Is a directory'), context).message).toContain('Is a directory');
    expect(mapSftpError(statusError(4, 'Failure'), context).message).not.toContain(': Failure');
  });

  it('treats a channel that went away as a connection fault, worth retrying', () => {
    expect(mapSftpError(new Error('No response from server'), context).code).toBe('E_CONNECTION');
    expect(mapSftpError(new Error('Not connected'), context).code).toBe('E_CONNECTION');
  });

  it('maps a missing extension to E_UNSUPPORTED and socket errnos like Node errors', () => {
    expect(mapSftpError(new Error('Server does not support this extended request'), context).code).toBe(
      'E_UNSUPPORTED',
    );
    expect(mapSftpError(Object.assign(new Error('reset'), { code: 'ECONNRESET' }), context).code).toBe(
      'E_CONNECTION',
    );
  });

  it('adds context to a SyncError without overriding what it already says', () => {
    const inner = new SyncError('E_TIMEOUT', 'stat got no answer', { op: 'stat', path: '/x' });
    const mapped = mapSftpError(inner, context);
    expect(mapped.code).toBe('E_TIMEOUT');
    expect(mapped.context).toMatchObject({ op: 'stat', path: '/x', host: context.host });
  });
});
