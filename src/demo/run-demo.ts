#!/usr/bin/env node
/**
 * `npm run demo`: the whole pipeline on a fresh machine, in under a minute. Starts an
 * SFTP server inside this process, writes a fetcher and a copier config into a
 * folder, and runs the real `fetch-files` and `copy-files` commands (as child
 * processes, exactly as a user would) for two passes each while a producer adds
 * files between passes. Ends with a report of what went where, checked by sha256.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startEmbeddedSftpServer } from './embedded-sftp-server.js';
import { generateEd25519KeyPair } from './generate-key-pair.js';

const CLI_DIR = join(import.meta.dirname, '..', 'cli');
const HOUR_MS = 3_600_000;

interface DemoFile {
  /** Path below the partner's `/outbound`. */
  relPath: string;
  content: Buffer;
}

/** Where each destination's filter sends a file, mirrored from the copier config below. */
const DESTINATIONS: readonly { name: string; describe: string; matches: (relPath: string) => boolean }[] = [
  { name: 'warehouse', describe: 'every *.csv', matches: (relPath) => relPath.endsWith('.csv') },
  {
    name: 'billing',
    describe: 'partner-demo/invoices/**',
    matches: (relPath) => relPath.startsWith('invoices/'),
  },
  { name: 'backup', describe: 'everything', matches: () => true },
];

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { dir: { type: 'string' } }, strict: true });
  const demoDir = values.dir ? resolve(values.dir) : await mkdtemp(join(tmpdir(), 'files-sync-link-demo-'));
  const paths = {
    served: join(demoDir, 'partner-server'),
    outbound: join(demoDir, 'partner-server', 'outbound'),
    keys: join(demoDir, 'keys'),
    etc: join(demoDir, 'etc'),
    data: join(demoDir, 'data'),
  };
  say(`demo folder: ${demoDir}`);
  await mkdir(paths.outbound, { recursive: true });
  await mkdir(paths.keys, { recursive: true, mode: 0o700 });
  await mkdir(paths.etc, { recursive: true });

  const clientKey = generateEd25519KeyPair('files-sync-link-demo');
  const privateKeyPath = join(paths.keys, 'id_ed25519');
  await writeFile(privateKeyPath, clientKey.private, { mode: 0o600 });
  const server = await startEmbeddedSftpServer({
    rootDir: paths.served,
    username: 'demo',
    authorizedKey: clientKey.public,
  });
  say(`partner SFTP server on ${server.host}:${server.port}, host key ${server.hostKeyFingerprint}`);

  try {
    const produced: DemoFile[] = [];
    const firstBatch = sampleFiles(1);
    produced.push(...firstBatch);
    await produce(paths.outbound, firstBatch);
    say(
      `the partner left ${firstBatch.length} files (+ a dotfile and a *.tmp the config skips) in /outbound`,
    );
    await writeFile(join(paths.etc, 'fetcher.yml'), fetcherYaml(server.port, server.hostKeyFingerprint));
    await writeFile(join(paths.etc, 'copier.yml'), copierYaml());

    let exitCode = 0;
    for (let pass = 1; pass <= 2; pass += 1) {
      say(`\n== pass ${pass}: fetch-files`);
      const fetchCode = await runCli('fetch-files', join(paths.etc, 'fetcher.yml'));
      say(`== pass ${pass}: copy-files`);
      const copyCode = await runCli('copy-files', join(paths.etc, 'copier.yml'));
      exitCode = exitCode || fetchCode || copyCode;
      if (pass === 1) {
        const secondBatch = [...sampleFiles(2), changedFile()];
        produced.push(...secondBatch);
        await produce(paths.outbound, secondBatch);
        say(
          `\nthe partner left ${secondBatch.length} more files, one of them a new version of orders/order-1-01.csv`,
        );
      }
    }
    const verified = await report(demoDir, paths.outbound, produced);
    say(`\nlook in ${join(demoDir, 'data')} (configs in ${paths.etc}, logs in ${join(demoDir, 'log')})`);
    return exitCode !== 0 ? exitCode : verified ? 0 : 1;
  } finally {
    await server.stop();
  }
}

function sampleFiles(batch: number): DemoFile[] {
  const files: DemoFile[] = [];
  for (let i = 1; i <= 8; i += 1) {
    const rows = Array.from(
      { length: 20 + i },
      (_, row) => `${batch}${i}${row},item-${row},${(row * 7.5).toFixed(2)}`,
    );
    files.push({
      relPath: `orders/order-${batch}-0${i}.csv`,
      content: Buffer.from(`id,item,amount\n${rows.join('\n')}\n`),
    });
  }
  for (let i = 1; i <= 5; i += 1) {
    const invoice = { invoice: `INV-${batch}0${i}`, lines: i + 2, total: i * 118.4 };
    files.push({
      relPath: `invoices/2026/invoice-${batch}-${i}.json`,
      content: Buffer.from(`${JSON.stringify(invoice)}\n`),
    });
  }
  files.push({ relPath: `reports/weekly-${batch}.zip`, content: randomBytes(256 * 1024) });
  files.push({
    relPath: `reports/summary-${batch}.csv`,
    content: Buffer.from(`week,orders\n${batch},${batch * 13}\n`),
  });
  return files;
}

function changedFile(): DemoFile {
  return { relPath: 'orders/order-1-01.csv', content: Buffer.from('id,item,amount\n1,corrected,99.00\n') };
}

/** Writes files as a partner would; mtimes an hour old so `min_age` lets them through. */
async function produce(outbound: string, files: readonly DemoFile[]): Promise<void> {
  const mtime = new Date(Date.now() - HOUR_MS);
  for (const file of files) {
    const path = join(outbound, file.relPath);
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, file.content);
    await utimes(path, mtime, mtime);
  }
  await writeFile(join(outbound, '.upload-in-progress.csv'), 'partial\n');
  await writeFile(join(outbound, 'big-export.tmp'), 'still being written\n');
}

function fetcherYaml(port: number, fingerprint: string): string {
  return `# Written by the demo. Relative paths are relative to this file's folder.
concurrency_limit: 8
interval: 10s
incoming: ../data/incoming
archive: ../data/archive
state_dir: ../var/state
log_dir: ../log
sources:
  - name: partner-demo
    host: 127.0.0.1
    port: ${port}
    username: demo
    private_key: ../keys/id_ed25519
    host_key: "${fingerprint}"
    remote_dir: /outbound
    recursive: true
    include: ["*.csv", "*.json", "**/*.zip"]
    exclude: ["*.tmp"]
    min_age: 10s
    after_fetch: move
    move_to: /outbound/done
`;
}

function copierYaml(): string {
  return `# Written by the demo. Relative paths are relative to this file's folder.
concurrency_limit: 8
interval: 5s
incoming: ../data/incoming
state_dir: ../var/state
log_dir: ../log
destinations:
  - name: warehouse
    path: ../data/out/warehouse
    include: ["*.csv"]
  - name: billing
    path: ../data/out/billing
    include: ["partner-demo/invoices/**"]   # patterns match the path below incoming, source folder included
  - name: backup
    path: ../data/out/backup
    verify: sha256
`;
}

function runCli(command: string, configPath: string): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      process.execPath,
      [join(CLI_DIR, `${command}.js`), '--config', configPath, '--stop-on-loop', '1'],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) say(`${command} exited with ${code}`);
      resolvePromise(code ?? 1);
    });
  });
}

/**
 * What went where, and proof: each destination holds the latest version of every
 * file its filter takes, byte for byte; the archive holds every version ever fetched;
 * incoming is empty; the server's `/outbound/done` holds every original.
 */
async function report(demoDir: string, outbound: string, produced: readonly DemoFile[]): Promise<boolean> {
  const latest = new Map(produced.map((file) => [file.relPath, sha256Of(file.content)]));
  const done = await hashTree(join(outbound, 'done'));
  const incoming = await hashTree(join(demoDir, 'data', 'incoming'));
  const archive = await hashTree(join(demoDir, 'data', 'archive', 'partner-demo'));
  say('\n== report');
  say(`fetched, then moved to /outbound/done on the server: ${done.size} files`);
  say(
    `archive: ${archive.size} files (every version: the older order-1-01.csv is kept with a timestamp suffix)`,
  );
  say(`incoming: ${incoming.size} files left (0: every file reached every destination)`);
  let ok = incoming.size === 0 && done.size === produced.length;
  const archived = new Set(archive.values());
  const unarchived = produced.filter((file) => !archived.has(sha256Of(file.content)));
  if (unarchived.length > 0) {
    ok = false;
    say(`archive lacks ${unarchived.map((file) => file.relPath).join(', ')}`);
  }
  for (const destination of DESTINATIONS) {
    const delivered = await hashTree(join(demoDir, 'data', 'out', destination.name, 'partner-demo'));
    const expected = [...latest].filter(([relPath]) => destination.matches(relPath));
    const wrong = expected.filter(([relPath, sha256]) => delivered.get(relPath) !== sha256);
    ok &&= wrong.length === 0 && delivered.size === expected.length;
    const verdict =
      wrong.length === 0
        ? 'sha256 verified'
        : `${wrong.length} WRONG: ${wrong.map(([path]) => path).join(', ')}`;
    say(`${destination.name} (${destination.describe}): ${delivered.size} files, ${verdict}`);
  }
  say(
    ok ? 'result: every file fetched once, archived, delivered and verified' : 'result: MISMATCH (see above)',
  );
  await writeFile(
    join(demoDir, 'demo-report.json'),
    `${JSON.stringify({ ok, latest: Object.fromEntries(latest) }, null, 2)}\n`,
  );
  return ok;
}

function sha256Of(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

/** relPath → sha256 of every file below `root` (an empty map when it does not exist). */
async function hashTree(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const entry of entries) {
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

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(70);
  },
);
