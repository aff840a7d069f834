// Three projects: `unit` (pure logic, no root, seconds), `integration`
// (real etcd and real kernel in lab namespaces; needs root and a build) and
// `e2e` (real runtimes such as podman driving weft in lab hosts; root, a build).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          // Unit tests first: they fail fast and need no root.
          sequence: { groupOrder: 0 },
          testTimeout: 10_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          sequence: { groupOrder: 1 },
          // Removes lab namespaces and processes left by crashed earlier runs.
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          pool: 'forks',
          // Two cores: more parallel files only make timing noisier.
          maxWorkers: 2,
        },
      },
      {
        test: {
          // Real clients (podman, …) driving weft inside lab hosts; after integration.
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          sequence: { groupOrder: 2 },
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          pool: 'forks',
          maxWorkers: 2,
        },
      },
    ],
  },
});
