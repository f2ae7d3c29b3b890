import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start their own sshd and spawn the CLI; two cores are shared.
    pool: 'forks',
    maxWorkers: 2,
  },
});
