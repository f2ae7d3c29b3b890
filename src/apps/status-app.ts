import { formatDuration, formatSize } from '../config/index.js';
import type { CommandName, PassRecord } from '../ledger/ledger.js';
import { openSqliteLedger } from '../ledger/index.js';
import type { App, AppContext } from './app-context.js';
import type { PassOutcome } from './run-loop.js';

export interface StatusRow {
  name: string;
  lastPassAt?: string;
  lastResult?: PassRecord['result'];
  lastPassFiles?: number;
  lastPassBytes?: number;
  lastPassDurationMs?: number;
  totalFiles: number;
  totalBytes: number;
  passes: number;
  filesWaiting?: number;
  lastError?: string;
}

/**
 * `status`: what the ledger knows of each configured source or destination — the last
 * pass, totals, files waiting, the last error. Reads only; exit 1 when the last pass
 * of any of them failed, so a monitoring check can run it.
 */
export function statusApp<C extends { stateDir: string }>(
  command: CommandName,
  names: (config: C) => readonly string[],
): App<C> {
  return async function runStatus(context: AppContext<C>): Promise<PassOutcome> {
    const ledger = openSqliteLedger({
      stateDir: context.config.stateDir,
      fileName: `${command}.sqlite`,
      readOnly: true,
    });
    try {
      const latest = new Map((await ledger.latestPasses(command)).map((pass) => [pass.name, pass]));
      const rows: StatusRow[] = [];
      for (const name of names(context.config)) {
        const pass = latest.get(name);
        const totals = await ledger.totals(command, name);
        rows.push({
          name,
          ...(pass
            ? {
                lastPassAt: new Date(pass.endedAtMs).toISOString(),
                lastResult: pass.result,
                lastPassFiles: pass.filesDone,
                lastPassBytes: pass.bytesDone,
                lastPassDurationMs: pass.endedAtMs - pass.startedAtMs,
                filesWaiting: pass.filesWaiting,
                ...(pass.lastError ? { lastError: pass.lastError } : {}),
              }
            : {}),
          totalFiles: totals.files,
          totalBytes: totals.bytes,
          passes: totals.passes,
        });
      }
      context.stdout.write(
        context.json ? `${JSON.stringify({ command, rows }, null, 2)}\n` : formatStatus(command, rows),
      );
      return rows.some((row) => row.lastResult === 'failed') ? 'failed' : 'ok';
    } finally {
      await ledger.close();
    }
  };
}

function formatStatus(command: CommandName, rows: readonly StatusRow[]): string {
  const lines = [`${command} status`];
  for (const row of rows) {
    if (!row.lastPassAt) {
      lines.push(`  ${row.name}: no pass recorded yet`);
      continue;
    }
    lines.push(
      `  ${row.name}: last pass ${row.lastPassAt} ${row.lastResult ?? ''} — ${row.lastPassFiles ?? 0} files, ${formatSize(row.lastPassBytes ?? 0)} in ${formatDuration(row.lastPassDurationMs ?? 0)}; ` +
        `total ${row.totalFiles} files, ${formatSize(row.totalBytes)} over ${row.passes} passes; ${row.filesWaiting ?? 0} waiting`,
    );
    if (row.lastError) lines.push(`    last error: ${row.lastError}`);
  }
  return `${lines.join('\n')}\n`;
}
