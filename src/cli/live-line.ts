/**
 * A status line that a long command refreshes while it runs. On a terminal it is
 * redrawn in place (carriage return, line cleared, cut to the terminal's width so that it
 * never wraps), after a progress bar when the total is known; elsewhere (a log, a pipe,
 * CI) a line is written only when its text changed, so an idle line does not repeat.
 */
export interface LiveLineStream {
  isTTY?: boolean;
  columns?: number;
  write(chunk: string): unknown;
}

export class LiveLine {
  private last: string | undefined;
  private drawn = false;

  constructor(
    private readonly stream: LiveLineStream,
    /** Where a finished line goes (the command's output). */
    private readonly out: (line: string) => void,
    private readonly barWidth = 20,
  ) {}

  /** Shows `text`, after a bar of done/total when a total is given. */
  update(text: string, done?: number, total?: number): void {
    const line = total !== undefined && total > 0 && done !== undefined ? `${progressBar(done, total, this.barWidth)} ${text}` : text;
    if (this.stream.isTTY === true) {
      const width = this.stream.columns ?? 0;
      const shown = width > 1 && line.length >= width ? `${line.slice(0, width - 2)}…` : line;
      this.stream.write(`\r\x1b[2K${shown}`);
      this.drawn = true;
    } else if (line !== this.last) {
      this.out(line);
    }
    this.last = line;
  }

  /** Leaves the last state on its own line (a terminal keeps the drawn line; elsewhere it was written). */
  end(): void {
    if (this.drawn) {
      this.stream.write('\n');
      this.drawn = false;
    }
  }
}

/** `[#######.............] 35/100` */
export function progressBar(done: number, total: number, width = 20): string {
  const share = Math.min(1, Math.max(0, done / total));
  const full = Math.round(share * width);
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}] ${done}/${total}`;
}
