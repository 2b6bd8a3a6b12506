/**
 * Claim checks: a frame whose payload is a file (`payloadRef`, a file:// URI)
 * instead of bytes in the record. The file is read only if, in this order:
 *
 *  1. the URI names a path inside one of `input.claimCheckRoots`, and so does
 *     the path with every link resolved (a link inside a root that points out
 *     of it, e.g. to /dev/zero, is refused);
 *  2. the declared size is within 1..maxBytes (the largest frame the pixel
 *     limit allows) and within the byte budget the caller has left;
 *  3. it opens without following a final link and without blocking (a FIFO's
 *     open does not wait for a writer), and the *opened* descriptor is a
 *     regular file of exactly the declared size;
 *  4. reading declared size + 1 bytes returns exactly the declared size (a file
 *     that grew or shrank since the stat is refused), and the SHA-256, when
 *     given, matches the bytes read.
 *
 * The whole check has a deadline (`timeoutMs`): a read that does not finish
 * (a hung network mount) fails the frame and the consumer moves on. Such a read
 * still holds one of libuv's few file-system threads until it returns, so at most
 * `maxStuckReads` may be outstanding; beyond that references fail at once
 * (`FRAME_PAYLOAD_UNRESOLVED`, naming the stuck reads) rather than starving the
 * process's other file work.
 *
 * What it cannot promise: a directory inside a root swapped for a link between
 * the path check and the open (Node has no openat2 RESOLVE_BENEATH). Roots must
 * be writable only by the stations that write claim checks.
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open, realpath, type FileHandle } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PayloadRef } from '../codec/records.js';
import { fromRoot, isInside } from '../config/paths.js';
import { ErrorCode, MmadError, isMmadError } from '../base/errors.js';

export interface ClaimCheckOptions {
  /** Directories a reference may point into (relative ones from the project root). */
  roots: string[];
  /** Largest payload accepted, bytes. */
  maxBytes: number;
  /** Deadline for resolving, opening and reading one reference. */
  timeoutMs: number;
  /** Reads past their deadline still running, beyond which references fail at once. */
  maxStuckReads: number;
}

/** The reference's declared size does not fit in the budget left: read it later (not an error of the frame). */
export class ClaimCheckDeferred extends Error {
  constructor(readonly sizeBytes: number) {
    super(`claim check of ${sizeBytes} bytes does not fit in the task's buffer now`);
  }
}

export class ClaimCheckReader {
  private readonly roots: string[];
  private realRoots: Promise<string[]> | undefined;
  private stuck = 0;

  constructor(private readonly o: ClaimCheckOptions) {
    this.roots = o.roots.map((r) => resolve(fromRoot(r)));
  }

  /** Reads still running past their deadline. */
  get stuckReads(): number {
    return this.stuck;
  }

  /**
   * The payload a reference names. `budgetBytes`: what the caller may still hold;
   * a reference declaring more (and fitting the absolute limit) throws
   * `ClaimCheckDeferred` before anything is opened.
   */
  async read(ref: PayloadRef, budgetBytes = Number.POSITIVE_INFINITY): Promise<Buffer> {
    const fail = failFor(ref);
    const path = this.lexicalPath(ref, fail);
    if (!Number.isSafeInteger(ref.sizeBytes) || ref.sizeBytes < 1) throw fail(`declared size ${ref.sizeBytes} is not a positive byte count`);
    if (ref.sizeBytes > this.o.maxBytes) throw fail(`declared size of ${ref.sizeBytes} bytes is larger than any frame within the pixel and voxel limits (${this.o.maxBytes})`);
    if (ref.sizeBytes > budgetBytes) throw new ClaimCheckDeferred(ref.sizeBytes);
    if (this.stuck >= this.o.maxStuckReads) {
      throw fail(`${this.stuck} earlier claim-check read(s) have not returned (storage not answering); refusing more until they do`);
    }
    let handle: FileHandle | undefined;
    // set by the deadline's timer while the read goes on; read through late(), as the flow analysis would take it,
    // read after awaits, for the false it was declared with
    let timedOut = false;
    const late = (): boolean => timedOut;
    const work = (async (): Promise<Buffer> => {
      const real = await realpath(path).catch((err: unknown) => {
        throw fail('file not found', err);
      });
      if (!inside(await this.resolvedRoots(), real)) throw fail('resolves (through a link) to a path outside input.claimCheckRoots');
      handle = await open(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((err: unknown) => {
        throw fail(`cannot be opened (${(err as NodeJS.ErrnoException).code ?? 'error'})`, err);
      });
      if (late()) return Buffer.alloc(0);
      const st = await handle.stat();
      if (!st.isFile()) throw fail('is not a regular file (a FIFO, device, socket or directory)');
      if (st.size !== ref.sizeBytes) throw fail(`file has ${st.size} bytes, the reference says ${ref.sizeBytes}`);
      const buf = Buffer.allocUnsafe(ref.sizeBytes + 1);
      let got = 0;
      while (got < buf.length && !late()) {
        const { bytesRead } = await handle.read(buf, got, buf.length - got, got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got !== ref.sizeBytes) throw fail(`read ${got > ref.sizeBytes ? 'more than' : got} bytes, the reference says ${ref.sizeBytes} (the file changed while it was read)`);
      const bytes = buf.subarray(0, got);
      if (ref.sha256 !== null) {
        const digest = createHash('sha256').update(bytes).digest('hex');
        if (digest !== ref.sha256.toLowerCase()) throw fail(`SHA-256 is ${digest}, the reference says ${ref.sha256}`);
      }
      return bytes;
    })();
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        this.stuck++;
        // the read goes on in its thread; it is counted until it returns, and its file closed then
        void work.catch(() => undefined).finally(() => {
          this.stuck--;
          void handle?.close().catch(() => undefined);
        });
        reject(fail(`not read within ${this.o.timeoutMs} ms (storage not answering)`));
      }, this.o.timeoutMs);
    });
    try {
      return await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
      if (!late()) await handle?.close().catch(() => undefined);
    }
  }

  private lexicalPath(ref: PayloadRef, fail: (why: string, cause?: unknown) => MmadError): string {
    let path: string;
    try {
      const url = new URL(ref.uri);
      if (url.protocol !== 'file:') throw fail(`scheme ${url.protocol} is not supported (file:// only)`);
      path = resolve(fileURLToPath(url));
    } catch (err) {
      throw isMmadError(err) ? err : fail('not a valid URI', err);
    }
    if (!inside(this.roots, path)) {
      throw fail(this.roots.length === 0 ? 'claim-check references are disabled (input.claimCheckRoots is empty)' : 'points outside input.claimCheckRoots');
    }
    return path;
  }

  /** The roots with their own links resolved (a root that does not exist yet is tried again next time). */
  private async resolvedRoots(): Promise<string[]> {
    this.realRoots ??= Promise.all(this.roots.map((r) => realpath(r).catch(() => null))).then((rs) => {
      if (rs.some((r) => r === null)) this.realRoots = undefined;
      return rs.filter((r): r is string => r !== null);
    });
    return this.realRoots;
  }
}

function failFor(ref: PayloadRef): (why: string, cause?: unknown) => MmadError {
  return (why, cause) => new MmadError(ErrorCode.FRAME_PAYLOAD_UNRESOLVED, `payload reference ${ref.uri.slice(0, 300)}: ${why}`, { cause });
}

function inside(roots: string[], path: string): boolean {
  return roots.some((root) => isInside(root, path));
}
