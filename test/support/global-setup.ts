import { execFileSync } from 'node:child_process';

/**
 * End-to-end tests run the compiled CLI as a child process, as a user would: build it
 * once before any test file starts.
 */
export default function setup(): void {
  try {
    execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
      stdio: 'inherit',
    });
  } catch {
    // tsc still emits on type errors; `npm run typecheck` is the step that fails on them.
    console.error('global-setup: tsc reported errors (see above); tests run against what it emitted');
  }
}
