/** Paths relative to the repository (or installed package) root; the same from src/ and dist/. */
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A configured path: absolute as given, relative ones against the project root (not the cwd). */
export function fromRoot(p: string): string {
  return isAbsolute(p) ? p : join(REPO_ROOT, p);
}

/** `path` lies strictly inside `dir` (both absolute and resolved the same way: lexically, or both with links resolved). */
export function isInside(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}
