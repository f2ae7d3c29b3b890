import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, collect, PROJECT_ROOT } from '../support/run-cli.js';
import { makeTempDir, type TempDir } from '../support/temp-dir.js';

async function hashTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(
      relative(root, path),
      createHash('sha256')
        .update(await readFile(path))
        .digest('hex'),
    );
  }
  return out;
}

describe('npm run demo', () => {
  let temp: TempDir;
  let result: CliResult;

  beforeAll(async () => {
    temp = await makeTempDir('demo-');
    const { spawn } = await import('node:child_process');
    const child = spawn(
      process.execPath,
      [join(PROJECT_ROOT, 'dist', 'demo', 'run-demo.js'), '--dir', temp.path],
      {
        cwd: PROJECT_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    result = await collect(child, 60_000);
  });
  afterAll(async () => {
    await temp?.remove();
  });

  it('ends within a minute with exit 0 and a report', () => {
    expect(result.code, result.stderr).toBe(0);
    expect(result.durationMs).toBeLessThan(60_000);
    expect(result.stdout).toContain('result: every file fetched once, archived, delivered and verified');
    expect(result.stdout).toContain(`look in ${join(temp.path, 'data')}`);
  });

  it('delivered files are byte-identical to what the partner published', async () => {
    // The originals, moved aside on the partner's server after each fetch (both versions of the changed file).
    const originals = new Set(
      (await hashTree(join(temp.path, 'partner-server', 'outbound', 'done'))).values(),
    );
    const report = JSON.parse(await readFile(join(temp.path, 'demo-report.json'), 'utf8')) as {
      latest: Record<string, string>;
    };
    const expectations: [string, (relPath: string) => boolean][] = [
      ['warehouse', (relPath) => relPath.endsWith('.csv')],
      ['billing', (relPath) => relPath.startsWith('invoices/')],
      ['backup', () => true],
    ];
    for (const [destination, takes] of expectations) {
      const delivered = await hashTree(join(temp.path, 'data', 'out', destination, 'partner-demo'));
      const expected = Object.entries(report.latest).filter(([relPath]) => takes(relPath));
      expect(delivered.size, destination).toBe(expected.length);
      for (const [relPath, sha256] of expected) {
        expect(delivered.get(relPath), `${destination}/${relPath}`).toBe(sha256);
        expect(originals.has(sha256)).toBe(true);
      }
    }
    // The changed file: its new version was delivered, both versions are archived.
    const archive = await hashTree(join(temp.path, 'data', 'archive', 'partner-demo'));
    expect([...archive.keys()].filter((path) => path.startsWith('orders/order-1-01'))).toHaveLength(2);
    expect(new Set(archive.values())).toEqual(originals);
    expect(
      await readdir(join(temp.path, 'data', 'incoming', 'partner-demo'), { recursive: true }).then((names) =>
        names.filter((name) => name.endsWith('.csv') || name.endsWith('.json') || name.endsWith('.zip')),
      ),
    ).toEqual([]);
  });
});
