/** Paths relative to the repository (or installed package) root; the same from src/ and dist/. */
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A configured path: absolute as given, relative ones against the project root (not the cwd). */
export function fromRoot(p: string): string {
  return isAbsolute(p) ? p : join(REPO_ROOT, p);
}
