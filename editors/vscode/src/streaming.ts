/**
 * Work-done progress as a text stream. The server streams every generation as `$/progress`:
 * `begin` (title such as "Explaining selection"), `report`s whose `message` is the text
 * generated since the previous report, and `end` whose message sums up or states the error
 * (issue 4). Concatenating the report messages in order gives the final text, so a panel
 * can show the explanation live. Pure (no `vscode` import).
 */

export interface ProgressBegin {
  kind: 'begin';
  title: string;
  message?: string;
  percentage?: number;
  cancellable?: boolean;
}
export interface ProgressReport {
  kind: 'report';
  message?: string;
  percentage?: number;
  cancellable?: boolean;
}
export interface ProgressEnd {
  kind: 'end';
  message?: string;
}
export type ProgressValue = ProgressBegin | ProgressReport | ProgressEnd;

export type StreamState = 'waiting' | 'streaming' | 'done';

/** Accumulates the deltas of one progress token. */
export class TextStream {
  title = '';
  text = '';
  percentage: number | undefined;
  state: StreamState = 'waiting';
  endMessage: string | undefined;
  reports = 0;

  /** Apply one `$/progress` value; returns true when something visible changed. */
  apply(value: ProgressValue): boolean {
    switch (value.kind) {
      case 'begin':
        this.title = value.title;
        this.state = 'streaming';
        this.setPercentage(value.percentage);
        return true;
      case 'report': {
        if (this.state === 'done') return false;
        this.state = 'streaming';
        this.reports++;
        const delta = value.message ?? '';
        this.text += delta;
        const pctChanged = this.setPercentage(value.percentage);
        return delta !== '' || pctChanged;
      }
      case 'end':
        this.state = 'done';
        this.endMessage = value.message;
        return true;
    }
  }

  private setPercentage(p: number | undefined): boolean {
    if (p === undefined || !Number.isFinite(p)) return false;
    const clamped = Math.max(0, Math.min(100, p));
    const changed = clamped !== this.percentage;
    this.percentage = clamped;
    return changed;
  }
}

/** What a progress is about, from its begin title. */
export type StreamKind = 'explain' | 'generate' | 'improve' | 'document' | 'fix' | 'pull' | 'other';

export function classifyProgressTitle(title: string): StreamKind {
  const t = title.toLowerCase();
  if (t.includes('explain')) return 'explain';
  if (t.includes('pull')) return 'pull';
  if (t.includes('generat') || t.includes('repair')) return 'generate'; // "Repairing Aethel contract (round 1)"
  if (t.includes('improv')) return 'improve';
  if (t.includes('document')) return 'document';
  if (t.includes('fix')) return 'fix';
  return 'other';
}

/** VS Code's `progress.report({increment})` wants deltas; LSP sends absolute percentages. */
export function percentIncrement(previous: number | undefined, next: number | undefined): number {
  if (next === undefined) return 0;
  return Math.max(0, Math.min(100, next) - (previous ?? 0));
}

export interface RoutedProgress<T> {
  token: string;
  kind: StreamKind;
  /** The consumer that asked for this kind of progress, if any was waiting. */
  ticket: T | undefined;
  stream: TextStream;
  value: ProgressValue;
}

/**
 * Routes server-created progress tokens to the consumers that want them. A consumer (an
 * explanation panel opened by our command, a pull notification) calls `wait(kind, ticket)`
 * before sending its request; the next `begin` of that kind is bound to it (FIFO). A begin
 * nobody waits for (e.g. "Explain selection" picked from the light bulb) is still routed,
 * with `ticket` undefined, when its kind is wanted, so the extension can open a panel then.
 */
export class ProgressRouter<T> {
  private readonly waiting: { kind: StreamKind; ticket: T; repeat: boolean }[] = [];
  private readonly active = new Map<string, { kind: StreamKind; ticket: T | undefined; stream: TextStream }>();

  constructor(private readonly wanted: ReadonlySet<StreamKind>) {}

  /**
   * Expect a progress of `kind` for `ticket`; returns a function that withdraws the wish.
   * With `repeat`, the ticket keeps taking begins of that kind until withdrawn (a generated
   * contract's repair rounds each have their own progress).
   */
  wait(kind: StreamKind, ticket: T, repeat = false): () => void {
    const entry = { kind, ticket, repeat };
    this.waiting.push(entry);
    return () => {
      const i = this.waiting.indexOf(entry);
      if (i >= 0) this.waiting.splice(i, 1);
    };
  }

  /** Give a token nobody waited for a consumer (after `handle` returned `ticket: undefined`). */
  attach(token: string, ticket: T): void {
    const a = this.active.get(token);
    if (a !== undefined) a.ticket = ticket;
  }

  /** Is a ticket already bound to a running progress? */
  isBound(ticket: T): boolean {
    for (const a of this.active.values()) if (a.ticket === ticket) return true;
    return false;
  }

  /** Route one `$/progress`; undefined means "not ours, let VS Code show it". */
  handle(token: string | number, value: ProgressValue): RoutedProgress<T> | undefined {
    const key = String(token);
    if (value.kind === 'begin') {
      const kind = classifyProgressTitle(value.title);
      if (!this.wanted.has(kind)) return undefined;
      const i = this.waiting.findIndex((w) => w.kind === kind);
      const entry = i >= 0 ? this.waiting[i] : undefined;
      if (entry !== undefined && !entry.repeat) this.waiting.splice(i, 1);
      const ticket = entry?.ticket;
      const stream = new TextStream();
      stream.apply(value);
      this.active.set(key, { kind, ticket, stream });
      return { token: key, kind, ticket, stream, value };
    }
    const a = this.active.get(key);
    if (a === undefined) return undefined;
    a.stream.apply(value);
    if (value.kind === 'end') this.active.delete(key);
    return { token: key, kind: a.kind, ticket: a.ticket, stream: a.stream, value };
  }

  get activeCount(): number {
    return this.active.size;
  }
}

/**
 * The Markdown file the server writes and opens (`window/showDocument`) after an explanation
 * (`.../explanations/explain-<stamp>.md`): the streaming panel already shows it.
 */
export function isExplanationDocument(uri: string): boolean {
  return /\/explain-[^/]*\.md$/i.test(uri);
}
