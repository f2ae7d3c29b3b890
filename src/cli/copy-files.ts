#!/usr/bin/env node
import { runCopyApp } from '../apps/copy-app.js';
import { statusApp } from '../apps/status-app.js';
import { type CopierConfig, loadCopierConfig } from '../config/index.js';
import { runCommand } from './run-command.js';

await runCommand<CopierConfig>(
  {
    name: 'copy-files',
    defaultConfigPath: 'etc/copier.yml',
    description:
      'Copy every file in incoming to each destination whose filters match; remove it once all hold a verified copy.',
    loadConfig: loadCopierConfig,
    run: runCopyApp,
    status: statusApp('copy-files', (config: CopierConfig) =>
      config.destinations.map((destination) => destination.name),
    ),
  },
  process.argv.slice(2),
  process.env,
);
