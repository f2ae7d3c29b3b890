#!/usr/bin/env node
import { runFetchApp } from '../apps/fetch-app.js';
import { statusApp } from '../apps/status-app.js';
import { type FetcherConfig, loadFetcherConfig } from '../config/index.js';
import { runCommand } from './run-command.js';

await runCommand<FetcherConfig>(
  {
    name: 'fetch-files',
    defaultConfigPath: 'etc/fetcher.yml',
    description:
      'Fetch files from SFTP sources into incoming, archive them, and record each in the ledger: exactly once.',
    loadConfig: loadFetcherConfig,
    run: runFetchApp,
    status: statusApp('fetch-files', (config: FetcherConfig) => config.sources.map((source) => source.name)),
  },
  process.argv.slice(2),
  process.env,
);
