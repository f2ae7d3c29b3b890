/**
 * A command whose app throws a plain TypeError: how every unexpected bug reaches the
 * CLI. Run as a child process by the CLI tests to check exit code 70 and the trace.
 */
import { runCommand } from '../../src/cli/run-command.js';
import { loadCopierConfig } from '../../src/config/index.js';

await runCommand(
  {
    name: 'buggy-command',
    defaultConfigPath: 'etc/copier.yml',
    description: 'test only',
    loadConfig: loadCopierConfig,
    run: () => {
      const nothing = undefined as unknown as { field: { deeper: number } };
      return Promise.resolve(nothing.field.deeper > 0 ? 'ok' : 'failed');
    },
    status: () => Promise.resolve('ok'),
  },
  process.argv.slice(2),
  process.env,
);
