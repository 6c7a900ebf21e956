// The crash-loop bound: a server that stops unexpectedly is restarted, but after the 5th
// unexpected stop within 3 minutes the extension gives up (and says why) instead of restarting
// a server that cannot stay up. "Restart server" starts the count again.

export const MAX_CRASHES = 5;
export const CRASH_WINDOW_MS = 3 * 60 * 1000;

export class CrashGuard {
  private stops: number[] = [];

  /** `now` is the clock (milliseconds); the tests pass a fake one. */
  constructor(private readonly now: () => number = Date.now) {}

  /** Record an unexpected stop; true when the server may be restarted, false when this stop is
   * the MAX_CRASHES-th within CRASH_WINDOW_MS. */
  stopped(): boolean {
    const t = this.now();
    this.stops = this.stops.filter((s) => t - s < CRASH_WINDOW_MS);
    this.stops.push(t);
    return this.stops.length < MAX_CRASHES;
  }

  /** The unexpected stops within the window, as of the last one recorded. */
  get count(): number {
    return this.stops.length;
  }

  reset(): void {
    this.stops = [];
  }
}
