// `berth pull REF`: pulls through berthd's admin endpoint and shows each
// layer's progress - redrawn in place on a terminal, as plain lines (one per
// layer state change) otherwise, so logs and pipes stay readable.
import type { PullEvent } from '../admin/client';
import { humanSize } from './format';

interface LayerRow {
  digest: string;
  size: number;
  received: number;
  stage: 'waiting' | 'downloading' | 'done';
  outcome?: string;
}

const OUTCOME_TEXT: Record<string, string> = {
  // Unpacked while downloading, or after (its parent layer was not ready yet): both are "pulled" to the operator.
  streamed: 'pulled',
  'from-store': 'pulled',
  present: 'already present',
};

export class PullView {
  private rows: LayerRow[] = [];
  /** Lines drawn last time (terminal mode), to move the cursor back over. */
  private drawn = 0;

  constructor(
    private readonly write: (s: string) => void,
    private readonly tty: boolean,
    private readonly ref: string,
  ) {}

  private static shortId(digest: string): string {
    return digest.replace(/^sha256:/, '').slice(0, 12);
  }

  private line(r: LayerRow): string {
    const id = PullView.shortId(r.digest);
    if (r.stage === 'done') return `${id}  ${OUTCOME_TEXT[r.outcome ?? ''] ?? r.outcome ?? 'done'}  ${humanSize(r.size)}`;
    if (r.stage === 'waiting') return `${id}  waiting`;
    const pct = r.size > 0 ? Math.min(100, Math.floor((r.received * 100) / r.size)) : 0;
    const width = 20;
    const filled = Math.round((pct * width) / 100);
    return `${id}  downloading [${'='.repeat(filled)}${' '.repeat(width - filled)}] ${humanSize(r.received)} / ${humanSize(r.size)}`;
  }

  private redraw(): void {
    // Up over the previous block, then each line cleared and rewritten.
    let out = this.drawn > 0 ? `\x1b[${this.drawn}A` : '';
    for (const r of this.rows) out += `\x1b[2K${this.line(r)}\n`;
    this.drawn = this.rows.length;
    this.write(out);
  }

  event(e: PullEvent): void {
    switch (e.event) {
      case 'layers':
        this.rows = e.layers.map((l) => ({ digest: l.digest, size: l.size, received: 0, stage: 'waiting' }));
        if (this.tty) this.redraw();
        return;
      case 'progress': {
        const r = this.rows[e.layer];
        if (!r) return;
        const first = r.stage === 'waiting';
        r.stage = 'downloading';
        r.received = e.received;
        if (this.tty) this.redraw();
        else if (first) this.write(`${PullView.shortId(r.digest)}  downloading  ${humanSize(r.size)}\n`);
        return;
      }
      case 'layer': {
        const r = this.rows[e.layer];
        if (!r) return;
        r.stage = 'done';
        r.outcome = e.outcome;
        r.received = r.size;
        if (this.tty) this.redraw();
        else this.write(`${this.line(r)}\n`);
        return;
      }
      case 'done':
        this.write(`pulled ${this.ref}: ${e.image.id} (${humanSize(e.image.size)})\n`);
        return;
      case 'error':
        return;
    }
  }
}
