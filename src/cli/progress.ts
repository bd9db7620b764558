import cliProgress from 'cli-progress';
import type { RolloutEvent } from '../core/events.js';
import { redactSecrets } from '../core/redact.js';

/**
 * The live display on a terminal: done / failed / running / pending, rate, ETA,
 * current wave and the last errors, above one progress bar.
 */
export class RolloutProgress {
  private readonly bar = new cliProgress.SingleBar(
    {
      format: '{bar} {value}/{total} | {succeeded} done, {failed} failed, {running} running, {pending} pending | {rate}/s | ETA {eta_formatted} | wave {wave}',
      hideCursor: true,
      clearOnComplete: false,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  private started = Date.now();
  private counts = { succeeded: 0, failed: 0, running: 0, pending: 0, skipped: 0 };
  private wave = '-';
  private total = 0;

  start(total: number, pending: number, skipped: number): void {
    this.total = total;
    this.counts.pending = pending;
    this.counts.skipped = skipped;
    this.started = Date.now();
    this.bar.start(total, skipped, this.payload());
  }

  handle(event: RolloutEvent): void {
    switch (event.event) {
      case 'wave.started':
        this.wave = event.wave === 0 ? 'canary' : String(event.wave);
        break;
      case 'tenant.started':
        this.counts.running++;
        this.counts.pending = Math.max(0, this.counts.pending - 1);
        break;
      case 'tenant.succeeded':
        this.counts.running--;
        this.counts.succeeded++;
        break;
      case 'tenant.skipped':
        this.counts.running--;
        this.counts.skipped++;
        break;
      case 'tenant.failed':
        this.counts.running--;
        this.counts.failed++;
        this.bar.stop();
        process.stdout.write(redactSecrets(`✗ ${event.tenant}: ${event.code} ${event.message.split('\n')[0]}\n`));
        this.bar.start(this.total, 0, this.payload());
        break;
      case 'rollout.halted':
        this.bar.stop();
        process.stdout.write(redactSecrets(`Rollout halted: ${event.reason}\n`));
        this.bar.start(this.total, 0, this.payload());
        break;
      default:
        break;
    }
    this.bar.update(this.counts.succeeded + this.counts.failed + this.counts.skipped, this.payload());
  }

  stop(): void {
    this.bar.stop();
  }

  private payload(): Record<string, string | number> {
    const seconds = (Date.now() - this.started) / 1000;
    return { ...this.counts, wave: this.wave, rate: seconds > 0 ? (this.counts.succeeded / seconds).toFixed(1) : '0.0' };
  }
}
