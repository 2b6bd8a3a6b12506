/**
 * The region of interest of a student's image inputs (the manifest's `roi`): the box of the
 * frame the model was trained on, as fractions of the frame's width and height. The service
 * crops every image frame to its pixel box before resizing (preprocess.ts), and places the
 * model's map, which covers only the box, back on a canvas of the frame's geometry
 * (`placeOnFrame`), so that regions and the heatmap stay in frame coordinates.
 *
 * `roiBox` must give the pixels models/mmad_models/data/roi.py `box_pixels` gives: the two
 * sides crop the same pixels, or the model sees at inference what it was not trained on.
 */
/** Fractions of the frame: 0 <= left < right <= 1, 0 <= top < bottom <= 1. */
export interface Roi {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

/** A pixel box: columns x0..x1-1, rows y0..y1-1. */
export interface PixelBox {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

// a fraction written from a pixel edge (k / W, rounded to a few decimals) stays on that edge
const EPS = 1e-6;

/**
 * The pixel box of `roi` in a `width` x `height` frame (the whole frame when `roi` is null),
 * at least one pixel each way. The start is kept inside the frame (a left within 1e-6 / width
 * of 1 would otherwise start past the last column), as the Python side does.
 */
export function roiBox(roi: Roi | null, width: number, height: number): PixelBox {
  if (roi === null) return { x0: 0, y0: 0, x1: width, y1: height };
  const x0 = Math.min(width - 1, Math.floor(roi.left * width + EPS));
  const y0 = Math.min(height - 1, Math.floor(roi.top * height + EPS));
  const x1 = Math.min(width, Math.max(x0 + 1, Math.ceil(roi.right * width - EPS)));
  const y1 = Math.min(height, Math.max(y0 + 1, Math.ceil(roi.bottom * height - EPS)));
  return { x0, y0, x1, y1 };
}

/** Whether `box` is all of a `width` x `height` frame (then nothing is cropped). */
export function isWholeFrame(box: PixelBox, width: number, height: number): boolean {
  return box.x0 === 0 && box.y0 === 0 && box.x1 === width && box.y1 === height;
}

/**
 * The rows of `box` out of an interleaved (HWC) image of `width` pixels a row and `pixelBytes`
 * bytes a pixel, as bytes: one copy into a fresh buffer (offset 0, so any typed array can view
 * it aligned), whatever the box. Row by row, because a box's row is contiguous in HWC.
 */
export function cropRows(src: Uint8Array, width: number, pixelBytes: number, box: PixelBox): Uint8Array {
  const rowBytes = (box.x1 - box.x0) * pixelBytes;
  const out = new Uint8Array((box.y1 - box.y0) * rowBytes);
  // full rows (the whole frame, or a band across it) are one contiguous run
  if (box.x0 === 0 && box.x1 === width) {
    out.set(src.subarray(box.y0 * rowBytes, box.y1 * rowBytes));
    return out;
  }
  for (let y = box.y0, o = 0; y < box.y1; y++, o += rowBytes) {
    const start = (y * width + box.x0) * pixelBytes;
    out.set(src.subarray(start, start + rowBytes), o);
  }
  return out;
}

/** A map placed on a canvas of the frame's geometry (see placeOnFrame). */
export interface PlacedMap {
  data: Float32Array;
  height: number;
  width: number;
  /** The canvas's cells the model's map was written to (the rest is outside the roi). */
  cells: PixelBox;
}

/**
 * A model's map (mapH x mapW, covering only the pixel `box` of a frameW x frameH frame) placed
 * on a canvas of the frame's geometry at about the map's resolution: the canvas is
 * round(mapW * frameW / boxW) x round(mapH * frameH / boxH) cells, the map pasted at
 * (round(x0 * mapW / boxW), round(y0 * mapH / boxH)), moved in so that it fits, and every other
 * cell is `fill` (outside the roi nothing was judged). A cell of the canvas is then about a
 * cell of the map, so what the map says keeps its resolution.
 */
export function placeOnFrame(map: Float32Array, mapH: number, mapW: number, box: PixelBox, frameW: number, frameH: number, fill = 0): PlacedMap {
  const boxW = box.x1 - box.x0;
  const boxH = box.y1 - box.y0;
  const width = Math.max(mapW, Math.round((mapW * frameW) / boxW));
  const height = Math.max(mapH, Math.round((mapH * frameH) / boxH));
  const ox = Math.min(width - mapW, Math.round((box.x0 * mapW) / boxW));
  const oy = Math.min(height - mapH, Math.round((box.y0 * mapH) / boxH));
  const data = new Float32Array(width * height);
  if (fill !== 0) data.fill(fill);
  if (map.length !== mapW * mapH) throw new RangeError(`${map.length} cells for a ${mapW}×${mapH} map`);
  for (let y = 0; y < mapH; y++) data.set(map.subarray(y * mapW, (y + 1) * mapW), (oy + y) * width + ox);
  return { data, height, width, cells: { x0: ox, y0: oy, x1: ox + mapW, y1: oy + mapH } };
}
