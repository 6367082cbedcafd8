/**
 * Progress of a long read: on a terminal, one bar redrawn in place with the rate and the ETA; on
 * anything else (a file, a pipe, CI), a plain line at most once per `lineIntervalMs` and at the end.
 */
export interface Progress {
  update(done: number, total: number): void;
  /** Final state; on a terminal, ends the bar's line. */
  end(done: number, total: number): void;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  return s >= 3600
    ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`
    : s >= 60
      ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
      : `${s}s`;
}

export function createProgress({
  write,
  isTTY,
  label,
  unit = 'records',
  now = Date.now,
  width = 30,
  lineIntervalMs = 1000,
}: {
  write: (text: string) => void;
  isTTY: boolean;
  label: string;
  unit?: string;
  now?: () => number;
  width?: number;
  lineIntervalMs?: number;
}): Progress {
  const start = now();
  let lastLine = -Infinity;
  let lastPrinted: string | undefined;
  const describe = (done: number, total: number): { pct: number; text: string } => {
    const elapsed = Math.max(1, now() - start) / 1000;
    const rate = done / elapsed;
    const pct = total <= 0 ? 1 : Math.min(1, done / total);
    const eta = rate > 0 ? (total - done) / rate : Infinity;
    return {
      pct,
      text: `${fmt(done)}/${fmt(total)} ${unit}, ${fmt(rate)} ${unit}/s, ETA ${done >= total ? '0s' : duration(eta)}`,
    };
  };
  return {
    update(done, total) {
      const { pct, text } = describe(done, total);
      if (isTTY) {
        const filled = Math.round(pct * width);
        write(
          `\r${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${String(Math.round(pct * 100)).padStart(3)}% ${text}\u001b[K`,
        );
        return;
      }
      const t = now();
      if (t - lastLine < lineIntervalMs) return;
      lastLine = t;
      lastPrinted = `${done}/${total}`;
      write(`${label}: ${Math.round(pct * 100)}% ${text}\n`);
    },
    end(done, total) {
      const { text } = describe(done, total);
      if (isTTY) {
        this.update(done, total);
        write('\n');
      } else if (lastPrinted !== `${done}/${total}`) write(`${label}: 100% ${text}\n`);
    },
  };
}
