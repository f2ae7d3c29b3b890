/**
 * The fetcher and the copier running at the same time on the same incoming, both on
 * short intervals, while a producer keeps publishing files on the SFTP server (some
 * large enough that a download overlaps the copier's passes). Destinations are
 * sampled all along: no sampled file may ever be partial. At the end every produced
 * file is in every destination exactly once, byte for byte.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir, readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CopierScenario,
  findTemporaries,
  hashTree,
  seededBytes,
  seededRandom,
  sftpDestination,
  sha256Of,
  writeFileWithMtime,
} from '../../support/copier-scenario.js';
import { type CliResult, collect, jsonLines, spawnCli } from '../../support/run-cli.js';
import { type SshdFixture, startSshd } from '../../support/sshd-fixture.js';

const SEED = 4242;
const FILE_COUNT = 60;
const SOURCE = 'partner';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('fetch-files and copy-files at the same time on one incoming', () => {
  let sshd: SshdFixture;
  let scenario: CopierScenario;

  beforeAll(async () => {
    sshd = await startSshd();
    scenario = await CopierScenario.create('copier-with-fetcher-');
  });
  afterAll(async () => {
    await scenario?.remove();
    await sshd?.stop();
  });

  it('no file is copied half-written and none is lost', async () => {
    const outbound = join(sshd.rootDir, 'outbound');
    const remoteInbound = join(sshd.rootDir, 'inbound');
    const out = (name: string): string => scenario.path('out', name);
    await writeFile(join(sshd.rootDir, '.keep'), '');
    await mkdir(outbound, { recursive: true });

    const fetcherConfig = scenario.path('fetcher.yml');
    await writeFile(
      fetcherConfig,
      JSON.stringify({
        concurrency_limit: 4,
        interval: '100ms',
        incoming: scenario.incoming,
        state_dir: scenario.stateDir,
        log_dir: scenario.path('fetcher-log'),
        sources: [
          {
            name: SOURCE,
            host: sshd.host,
            port: sshd.port,
            username: sshd.username,
            private_key: sshd.clientKeyPath,
            known_hosts: sshd.knownHostsPath,
            remote_dir: outbound,
            recursive: true,
            after_fetch: 'delete',
          },
        ],
      }),
    );
    await scenario.writeConfig({
      concurrency_limit: 4,
      interval: '50ms',
      destinations: [
        { name: 'all', path: out('all'), on_conflict: 'fail' },
        { name: 'bins', path: out('bins'), include: ['*.bin'], verify: 'sha256', on_conflict: 'rename' },
        sftpDestination(sshd, 'remote', remoteInbound, { on_conflict: 'fail' }),
      ],
    });

    // relPath in incoming and in every destination → sha256.
    const produced = new Map<string, string>();
    const sampledBad: string[] = [];
    let sampledFiles = 0;
    // Samples that caught a download in progress (a fetcher temporary in incoming).
    let downloadsSeen = 0;
    let producing = true;
    let sampling = true;

    const fetcher = spawnCli('fetch-files', ['--config', fetcherConfig]);
    const copier = scenario.spawn();
    const fetcherDone = collect(fetcher, 120_000);
    const copierDone = collect(copier, 120_000);

    const producer = (async () => {
      const random = seededRandom(SEED);
      for (let i = 0; i < FILE_COUNT; i += 1) {
        const large = i % 10 === 3;
        const sizeBytes = large ? 12 * 1024 * 1024 + i : Math.floor(random() * 200_000);
        const ext = i % 2 === 0 ? 'bin' : 'csv';
        const relPath = `batch-${Math.floor(i / 10)}/file-${String(i).padStart(3, '0')}.${ext}`;
        const content = seededBytes(SEED + i, sizeBytes);
        // Published as the partner would: written under a hidden name, then renamed.
        const staged = join(outbound, `.staging-${i}`);
        await writeFileWithMtime(staged, content, Date.now() - 60_000);
        await mkdir(join(outbound, relPath, '..'), { recursive: true });
        produced.set(`${SOURCE}/${relPath}`, sha256Of(content));
        await rename(staged, join(outbound, relPath));
        await sleep(large ? 150 : 40 + random() * 60);
      }
      producing = false;
    })();

    const sampler = (async () => {
      const dirs = [out('all'), out('bins'), remoteInbound];
      while (sampling) {
        if ((await findTemporaries(scenario.incoming)).length > 0) downloadsSeen += 1;
        for (const dir of dirs) {
          let names: string[];
          try {
            names = await readdir(dir, { recursive: true });
          } catch {
            continue;
          }
          for (const name of names) {
            const base = name.split('/').pop() ?? name;
            if (base.startsWith('.') && base.endsWith('.part')) continue;
            let content: Buffer;
            try {
              content = await readFile(join(dir, name));
            } catch {
              continue; // a folder, or gone
            }
            sampledFiles += 1;
            if (produced.get(name) !== sha256Of(content)) sampledBad.push(`${dir}/${name}`);
          }
        }
        await sleep(30);
      }
    })();

    const everythingDelivered = async (): Promise<boolean> => {
      if (producing) return false;
      const expected = Object.fromEntries(produced);
      const [all, bins, remote, incoming] = await Promise.all([
        hashTree(out('all')),
        hashTree(out('bins')),
        hashTree(remoteInbound),
        hashTree(scenario.incoming),
      ]);
      const expectedBins = Object.fromEntries([...produced].filter(([relPath]) => relPath.endsWith('.bin')));
      return (
        JSON.stringify(all) === JSON.stringify(sortKeys(expected)) &&
        JSON.stringify(bins) === JSON.stringify(sortKeys(expectedBins)) &&
        JSON.stringify(remote) === JSON.stringify(sortKeys(expected)) &&
        Object.keys(incoming).length === 0
      );
    };

    let fetcherResult: CliResult | undefined;
    let copierResult: CliResult | undefined;
    try {
      await producer;
      const deadlineMs = Date.now() + 60_000;
      while (!(await everythingDelivered())) {
        if (Date.now() > deadlineMs) break;
        await sleep(100);
      }
    } finally {
      sampling = false;
      await sampler;
      stop(fetcher);
      stop(copier);
      fetcherResult = await fetcherDone;
      copierResult = await copierDone;
    }

    expect(copierResult.code, copierResult.stderr.slice(-4000)).toBe(130);
    expect(fetcherResult.code, fetcherResult.stderr.slice(-4000)).toBe(130);
    expect(sampledBad, 'partial or wrong files seen at a destination').toEqual([]);
    expect(sampledFiles).toBeGreaterThan(FILE_COUNT);
    // The copier ran many passes while downloads were in flight beside it.
    const copierPasses = jsonLines(copierResult.stderr).filter(
      (line) => line.event === 'pass-summary' && line.name === '(incoming)',
    ).length;
    expect(downloadsSeen).toBeGreaterThan(0);
    expect(copierPasses).toBeGreaterThan(5);
    console.log(
      `with-fetcher: ${sampledFiles} samples, ${downloadsSeen} mid-download, ${copierPasses} copier passes`,
    );

    const expected = sortKeys(Object.fromEntries(produced));
    expect(await hashTree(out('all'))).toEqual(expected);
    expect(await hashTree(remoteInbound)).toEqual(expected);
    expect(await hashTree(out('bins'))).toEqual(
      sortKeys(Object.fromEntries([...produced].filter(([relPath]) => relPath.endsWith('.bin')))),
    );
    expect(await hashTree(scenario.incoming)).toEqual({});
    expect(await hashTree(outbound)).toEqual({});
    expect(await findTemporaries(scenario.path('out'), remoteInbound, scenario.incoming)).toEqual([]);
    // Neither command logged an error: a half-seen file would have failed verification.
    const errors = [...jsonLines(copierResult.stderr), ...jsonLines(fetcherResult.stderr)].filter(
      (line) => typeof line.level === 'number' && line.level >= 50,
    );
    expect(errors).toEqual([]);
  });
});

function stop(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
}

function sortKeys(record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
