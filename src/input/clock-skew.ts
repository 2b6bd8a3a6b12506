/**
 * Stations' clocks, seen from the frames they send: a frame's capture time
 * against the time its record reached the broker (the Kafka record timestamp;
 * with `message.timestamp.type=LogAppendTime` on the input topics this is the
 * broker's clock, with the default CreateTime it is the producing client's).
 *
 * A capture time beyond the allowed lead would move the join's stream time
 * ahead of every other station's frames (their frames become too late, pending
 * parts are released early, closed parts are remembered for ever), so such a
 * frame is not joined: it is a dead letter `FRAME_CLOCK_SKEW`. The lead is
 * measured against the earlier of the record timestamp and the service's own
 * clock, so a producer that stamps its records with the same wrong clock is
 * caught too. A capture time lagging by more than `maxLagMs` is refused the same
 * way (the frame could only be too late, and the reason names the clock).
 *
 * The last skew per station is kept for the `mmad_station_clock_skew_seconds`
 * gauge, for at most `maxStations` stations (the least recently seen forgotten).
 */
import { ErrorCode, MmadError } from '../base/errors.js';

export interface StationSkew {
  line: string;
  station: string;
  /** Capture time minus record timestamp, ms (positive: the station's clock is ahead). */
  skewMs: number;
}

export interface ClockBounds {
  maxLeadMs: number;
  maxLagMs: number;
}

export class ClockSkewTracker {
  private readonly last = new Map<string, StationSkew>();

  constructor(
    private readonly bounds: ClockBounds,
    private readonly maxStations = 256,
  ) {}

  /**
   * Records the frame's skew and throws `FRAME_CLOCK_SKEW` when it is beyond the
   * bounds. `recordTime`: the record timestamp (≤ 0 when the record has none);
   * `now`: the service's clock.
   */
  check(frame: { line: string; station: string; sampleId: string }, captureTime: number, recordTime: number, now: number): void {
    const hasRecordTime = Number.isFinite(recordTime) && recordTime > 0;
    if (hasRecordTime) this.note(frame.line, frame.station, captureTime - recordTime);
    const reference = hasRecordTime ? Math.min(recordTime, now) : now;
    const lead = captureTime - reference;
    if (lead > this.bounds.maxLeadMs) {
      throw new MmadError(
        ErrorCode.FRAME_CLOCK_SKEW,
        `capture time ${iso(captureTime)} is ${seconds(lead)} ahead of the ${hasRecordTime && recordTime <= now ? 'record timestamp' : "service's clock"} ` +
          `(${iso(reference)}; allowed ${seconds(this.bounds.maxLeadMs)}, input.maxClockLeadMs): station ${frame.station}'s clock is wrong or the time is not in ms`,
        { details: { leadMs: lead } },
      );
    }
    const lag = hasRecordTime ? recordTime - captureTime : 0;
    if (lag > this.bounds.maxLagMs) {
      throw new MmadError(
        ErrorCode.FRAME_CLOCK_SKEW,
        `capture time ${iso(captureTime)} is ${seconds(lag)} behind the record timestamp (${iso(recordTime)}; allowed ${seconds(this.bounds.maxLagMs)}, input.maxClockLagMs): ` +
          `station ${frame.station}'s clock is wrong, or the frame was held back that long`,
        { details: { lagMs: lag } },
      );
    }
  }

  /** The last skew seen per station (at most `maxStations`). */
  snapshot(): StationSkew[] {
    return [...this.last.values()].map((s) => ({ ...s }));
  }

  private note(line: string, station: string, skewMs: number): void {
    const key = `${line}\u0000${station}`;
    this.last.delete(key); // re-inserted last: the map is in order of last sighting
    this.last.set(key, { line, station, skewMs });
    const oldest = this.last.keys().next();
    if (this.last.size > this.maxStations && !oldest.done) this.last.delete(oldest.value);
  }
}

function iso(t: number): string {
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toISOString();
}

function seconds(ms: number): string {
  return ms >= 86_400_000 ? `${(ms / 86_400_000).toFixed(1)} d` : `${(ms / 1000).toFixed(1)} s`;
}
