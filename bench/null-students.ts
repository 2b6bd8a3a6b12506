/** Null students for the benchmarks: the ceiling of the pipeline benchmark, the peer benchmark's `--students null`. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, fromRoot } from '../src/config/paths.js';
import { messageOf } from '../src/base/errors.js';

/**
 * The null students of `manifest` (models/mmad_models/null_students.py), written
 * to out/bench/null-students/ by the models package; undefined, with the reason printed, where
 * that cannot run (no models/.venv).
 */
export function writeNullStudents(manifest: string): string | undefined {
  const python = join(REPO_ROOT, 'models', '.venv', 'bin', 'python');
  let why: string;
  if (existsSync(python)) {
    try {
      const args = ['-m', 'mmad_models.null_students', '--manifest', fromRoot(manifest), '--out', join(REPO_ROOT, 'out', 'bench', 'null-students')];
      // from models/, so that the package of this checkout is the one imported
      return execFileSync(python, args, { cwd: join(REPO_ROOT, 'models'), encoding: 'utf8' }).trim();
    } catch (err) {
      why = `writing the null students failed: ${messageOf(err)}`;
    }
  } else why = `no ${python}; bash models/scripts/setup-venv.sh makes it`;
  console.log(`(the ceiling with null students is skipped: ${why})`);
  return undefined;
}

