/** The test students (test/fixtures/models, built by make.py there) and configs that use them. */
import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Config } from '../../src/config/config-schema.js';
import { loadConfig } from '../../src/config/load-config.js';
import { testConfig } from './kafka.js';

export const TEST_MODELS_DIR = fileURLToPath(new URL('../fixtures/models/', import.meta.url));
export const TEST_MANIFEST = join(TEST_MODELS_DIR, 'manifest.json');
/** Null students of rgb+ir and rgb+ir+ct (fixtures/models/ct, built by ct/make.py): a ct grid of 8 × 16 × 16, maps of 32 × 32. */
export const CT_MANIFEST = join(TEST_MODELS_DIR, 'ct', 'manifest.json');

/** A writable copy of the test models, for tests that break something. */
export function copyOfTestModels(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mmad-models-'));
  cpSync(TEST_MODELS_DIR, dir, { recursive: true });
  return dir;
}

export function readF32(path: string): Float32Array {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}

export function inferenceConfig(overrides: Record<string, unknown> = {}): Config {
  return loadConfig({ env: {}, overrides: { inference: { manifest: TEST_MANIFEST, maxBatchWaitMs: 2, ...overrides } } });
}

/**
 * A config for an in-process stream processor on the test broker: unique topics and group
 * (testConfig), the test students, and short waits so a test runs in seconds.
 */
export function processorTestConfig(overridesOf: (base: Config) => Record<string, unknown> = () => ({})): Config {
  const base = testConfig();
  const overrides = overridesOf(base);
  return loadConfig({
    env: {},
    overrides: {
      ...JSON.parse(JSON.stringify(base)),
      processing: { maxTaskIdleMs: 50, tickMs: 20, commitIntervalMs: 100 },
      inference: { manifest: TEST_MANIFEST, maxBatchWaitMs: 2 },
      ...overrides,
    } as never,
  });
}
