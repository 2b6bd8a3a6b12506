/**
 * The V8 options every long-running `mmad` process starts with: `bin/mmad.mjs`'s
 * shebang (`npx mmad`), `npm start`, the images' entrypoints (deploy/Dockerfile*),
 * the benchmarks' `mmad run` (test/deploy checks they agree). They go on node's
 * command line: V8 reads them when it makes the heap, and node refuses them in
 * NODE_OPTIONS.
 *
 * `--initial-old-space-size=128`: V8 starts with a small old generation and, while
 * its collector is busy, grows it slowly, so a service that reads a few hundred KiB
 * of frames per part ran a full collection every 100 ms or so with 20-25 MiB of heap
 * live. Starting at 128 MiB cut the collector's CPU per part by about a third for
 * 43 MiB more resident memory (README, Operations → Sizing, "The ceiling").
 */
export const NODE_FLAGS: readonly string[] = ['--initial-old-space-size=128'];
