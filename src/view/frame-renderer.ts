/**
 * A part's frame as a PNG for the browser: the record read back from its input
 * topic at the coordinates its event recorded, decoded with the service's own
 * decoders (Avro, the claim check, sharp), turned into what a person sees
 * (render.ts) and, when asked, with the event's heatmap over it. Rendered PNGs
 * are kept in a cache bounded by bytes.
 */
import sharp from 'sharp';
import type { AvroCodec } from '../codec/avro-codec.js';
import type { Config } from '../config/config-schema.js';
import { messageOf } from '../base/errors.js';
import { decodeFrame, decodeLimitsOf, type DecodeLimits } from '../inference/preprocess.js';
import { ClaimCheckReader } from '../input/claim-check.js';
import type { RevisionView } from './line-store.js';
import type { FetchResult } from './record-fetcher.js';
import { falseColour, heatmapImage, heightMap, overlayHeatmap, type HeatmapPixels, type RgbImage } from './render.js';

export type Rendered = { ok: true; png: Buffer; width: number; height: number; legend: string | null } | { ok: false; status: number; message: string };

export interface RecordSource {
  fetch(topic: string, partition: number, offset: number): Promise<FetchResult>;
}

export class FrameRenderer {
  private readonly cache = new Map<string, Rendered & { ok: true }>();
  private cachedBytes = 0;
  private readonly limits: DecodeLimits;
  private readonly claims: ClaimCheckReader;

  constructor(
    private readonly records: RecordSource,
    private readonly codec: AvroCodec<'Frame'>,
    config: Config,
    private readonly maxCacheBytes = 32 * 1024 * 1024,
  ) {
    this.limits = decodeLimitsOf(config);
    this.claims = new ClaimCheckReader({
      roots: config.input.claimCheckRoots,
      maxBytes: config.inference.maxPixels * 16,
      timeoutMs: config.input.claimCheckTimeoutMs,
      maxStuckReads: config.input.maxStuckClaimReads,
    });
  }

  /** The `modality` frame of one revision of a part, with its heatmap over it when `overlay`. */
  async render(sampleId: string, rev: RevisionView, modality: string, overlay: boolean): Promise<Rendered> {
    const key = `${sampleId}\u0000${rev.revision}\u0000${modality}\u0000${overlay ? 1 : 0}`;
    const hit = this.cache.get(key);
    if (hit !== undefined) {
      // most recently used last
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const result = await this.renderUncached(rev, modality, overlay);
    if (result.ok) this.remember(key, result);
    return result;
  }

  /** The heatmap alone, in the overlay's colours. */
  async heatmap(rev: RevisionView): Promise<Rendered> {
    if (rev.heatmap === null || rev.threshold === null) return { ok: false, status: 404, message: 'this revision has no heatmap' };
    const img = heatmapImage(await heatPixels(rev.heatmap.png, rev.heatmap.scale), rev.threshold);
    return { ok: true, png: await toPng(img), width: img.width, height: img.height, legend: null };
  }

  get cacheBytes(): number {
    return this.cachedBytes;
  }

  private async renderUncached(rev: RevisionView, modality: string, overlay: boolean): Promise<Rendered> {
    const source = rev.sources.find((s) => s.modality === modality);
    if (source === undefined) return { ok: false, status: 404, message: `revision ${rev.revision} was judged without a ${modality} frame` };
    let got: FetchResult;
    try {
      got = await this.records.fetch(source.topic, source.partition, source.offset);
    } catch (err) {
      return { ok: false, status: 502, message: `reading ${source.topic}/${source.partition}@${source.offset} failed: ${messageOf(err)}` };
    }
    if (!got.found) return { ok: false, status: 410, message: got.why };
    if (got.message.value === null) return { ok: false, status: 410, message: `the record at ${source.topic}/${source.partition}@${source.offset} has no value` };
    let image: RgbImage;
    let legend: string | null = null;
    try {
      const frame = await this.codec.decode(got.message.value);
      const payload = frame.payload ?? (frame.payloadRef === null ? null : await this.claims.read(frame.payloadRef));
      if (payload === null) return { ok: false, status: 422, message: 'the frame has neither payload nor payload reference' };
      const decoded = await decodeFrame(frame, payload, this.limits);
      if (decoded.modality === 'rgb') {
        image = { width: decoded.width, height: decoded.height, data: decoded.data as Uint8Array };
      } else if (decoded.modality === 'ir') {
        const fc = falseColour(decoded.data as Uint16Array, decoded.width, decoded.height);
        image = fc;
        legend = `ir ${fc.min}..${fc.max} (dark → bright)`;
      } else {
        const hm = heightMap(decoded.data as Float32Array, decoded.width, decoded.height);
        image = hm;
        legend = `z ${fmt(hm.min)}..${fmt(hm.max)} (near yellow, far blue)${hm.missing > 0 ? `, ${hm.missing} missing points grey` : ''}`;
      }
    } catch (err) {
      return { ok: false, status: 422, message: `the ${modality} frame cannot be shown: ${messageOf(err)}` };
    }
    if (overlay && rev.heatmap !== null && rev.threshold !== null) {
      image = overlayHeatmap(image, await heatPixels(rev.heatmap.png, rev.heatmap.scale), rev.threshold);
    }
    return { ok: true, png: await toPng(image), width: image.width, height: image.height, legend };
  }

  private remember(key: string, r: Rendered & { ok: true }): void {
    if (r.png.length > this.maxCacheBytes) return;
    this.cache.set(key, r);
    this.cachedBytes += r.png.length;
    for (const [k, v] of this.cache) {
      if (this.cachedBytes <= this.maxCacheBytes) break;
      this.cache.delete(k);
      this.cachedBytes -= v.png.length;
    }
  }
}

function fmt(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toPrecision(4);
}

/** An event's heatmap PNG (8-bit grey) as pixels. */
export async function heatPixels(png: Buffer, scale: number): Promise<HeatmapPixels> {
  const { data, info } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  return { width: info.width, height: info.height, grey: new Uint8Array(data.buffer, data.byteOffset, data.length), scale };
}

export async function toPng(img: RgbImage): Promise<Buffer> {
  return await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } }).png({ compressionLevel: 6 }).toBuffer();
}
