/**
 * A small stand-in for the `vscode` module, enough to activate the extension (and the real
 * vscode-languageclient inside it) in plain node: VS Code itself cannot be downloaded here.
 * It records what the extension shows (status bar, panels, messages, commands) so a test
 * can assert on it. Unknown API members become no-ops (namespaces) or plain classes, so
 * the client's many features can register themselves without a hand-written stub each.
 */
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-assignment, @typescript-eslint/no-unsafe-return, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-argument */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';

type Listener<T> = (e: T) => unknown;

export class EventEmitter<T> {
  private listeners: Listener<T>[] = [];
  event = (listener: Listener<T>): { dispose(): void } => {
    this.listeners.push(listener);
    return { dispose: () => (this.listeners = this.listeners.filter((l) => l !== listener)) };
  };
  fire(e: T): void {
    for (const l of [...this.listeners]) l(e);
  }
  dispose(): void {
    this.listeners = [];
  }
}

export class Disposable {
  constructor(private readonly fn: () => void = () => undefined) {}
  static from(...items: { dispose(): unknown }[]): Disposable {
    return new Disposable(() => items.forEach((i) => i.dispose()));
  }
  dispose(): void {
    this.fn();
  }
}

export class Uri {
  private constructor(
    readonly scheme: string,
    readonly fsPath: string,
    private readonly raw: string,
  ) {}
  static parse(value: string): Uri {
    const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(value)?.[1] ?? 'file';
    return new Uri(scheme, scheme === 'file' ? fileURLToPath(value) : value, value);
  }
  static file(p: string): Uri {
    return new Uri('file', p, pathToFileURL(p).href);
  }
  static joinPath(base: Uri, ...parts: string[]): Uri {
    return Uri.file(path.join(base.fsPath, ...parts));
  }
  get path(): string {
    return this.scheme === 'file' ? this.fsPath : this.raw;
  }
  toString(): string {
    return this.raw;
  }
  toJSON(): string {
    return this.raw;
  }
  with(): Uri {
    return this;
  }
}

export class Position {
  constructor(
    readonly line: number,
    readonly character: number,
  ) {}
}

export class Range {
  readonly start: Position;
  readonly end: Position;
  constructor(a: Position | number, b: Position | number, c?: number, d?: number) {
    if (typeof a === 'number') {
      this.start = new Position(a, b as number);
      this.end = new Position(c ?? 0, d ?? 0);
    } else {
      this.start = a;
      this.end = b as Position;
    }
  }
  get isEmpty(): boolean {
    return this.start.line === this.end.line && this.start.character === this.end.character;
  }
}

export class Selection extends Range {
  constructor(
    readonly anchor: Position,
    readonly active: Position,
  ) {
    super(anchor, active);
  }
}

export class CancellationTokenSource {
  private emitter = new EventEmitter<void>();
  token = { isCancellationRequested: false, onCancellationRequested: this.emitter.event };
  cancel(): void {
    if (this.token.isCancellationRequested) return;
    this.token.isCancellationRequested = true;
    this.emitter.fire();
  }
  dispose(): void {
    this.emitter.dispose();
  }
}

export class CancellationError extends Error {}

export class MarkdownString {
  supportThemeIcons = false;
  constructor(readonly value = '') {}
}

export class ThemeColor {
  constructor(readonly id: string) {}
}

export class ThemeIcon {
  constructor(readonly id: string) {}
}

/** A text document the way the client reads it. */
export interface StubDocument {
  uri: Uri;
  fileName: string;
  languageId: string;
  version: number;
  lineCount: number;
  getText(range?: Range): string;
  lineAt(line: number): { text: string; lineNumber: number };
}

export function textDocument(file: string, languageId: string, text: string): StubDocument & Record<string, unknown> {
  const lines = text.split('\n');
  return {
    uri: Uri.file(file),
    fileName: file,
    languageId,
    version: 1,
    isClosed: false,
    isUntitled: false,
    lineCount: lines.length,
    eol: 1,
    getText: (range?: Range) => {
      if (range === undefined) return text;
      const all = lines.slice(range.start.line, range.end.line + 1);
      if (all.length === 0) return '';
      all[all.length - 1] = (all[all.length - 1] ?? '').slice(0, range.end.line === range.start.line ? range.end.character : range.end.character);
      all[0] = (all[0] ?? '').slice(range.start.character);
      return all.join('\n');
    },
    lineAt: (line: number) => ({ text: lines[line] ?? '', lineNumber: line }),
  };
}

export interface StubState {
  statusItems: { text: string; tooltip: unknown; command?: string; backgroundColor?: ThemeColor }[];
  commands: Map<string, (...args: any[]) => unknown>;
  panels: { title: string; html: string; messages: any[]; disposed: boolean; receive: EventEmitter<unknown> }[];
  messages: { kind: 'info' | 'warning' | 'error'; text: string; items: string[] }[];
  shownDocuments: string[];
  log: string[];
  executed: { command: string; args: unknown[] }[];
  didOpen: EventEmitter<StubDocument>;
  textDocuments: StubDocument[];
  activeTextEditor: unknown;
  settings: Record<string, unknown>;
  /** What the next showErrorMessage/showInformationMessage/... resolves to. */
  answer: (text: string, items: string[]) => string | undefined;
  /** What showInputBox resolves to. */
  inputBox: string | undefined;
  quickPicks: StubQuickPick[];
  progress: { title: string; location: number; reports: { message?: string; increment?: number }[] }[];
}

export interface StubQuickPick {
  items: { label: string; description?: string; detail?: string; buttons?: unknown[] }[];
  selectedItems: unknown[];
  busy: boolean;
  title?: string;
  accept(item: unknown): void;
  triggerButton(item: unknown): void;
  visible: boolean;
}

export function createVscodeStub(): { vscode: unknown; state: StubState } {
  const state: StubState = {
    statusItems: [],
    commands: new Map(),
    panels: [],
    messages: [],
    shownDocuments: [],
    log: [],
    executed: [],
    didOpen: new EventEmitter<StubDocument>(),
    textDocuments: [],
    activeTextEditor: undefined,
    settings: {},
    answer: () => undefined,
    inputBox: undefined,
    quickPicks: [],
    progress: [],
  };
  const noopEvent = () => new Disposable();

  /** Any unknown member: events and registrations give a Disposable, the rest a no-op. */
  const namespace = (known: Record<string, unknown>): any =>
    new Proxy(known, {
      get(target, prop: string) {
        if (prop in target) return target[prop];
        if (prop.startsWith('onDid') || prop.startsWith('onWill')) return noopEvent;
        return () => new Disposable();
      },
    });

  const outputChannel = (name: string) => {
    const line = (level: string) => (msg: string) => state.log.push(`[${name}:${level}] ${msg}`);
    return {
      name,
      logLevel: 2,
      onDidChangeLogLevel: noopEvent,
      append: line('append'),
      appendLine: line('line'),
      replace: () => undefined,
      clear: () => undefined,
      show: () => undefined,
      hide: () => undefined,
      dispose: () => undefined,
      trace: line('trace'),
      debug: line('debug'),
      info: line('info'),
      warn: line('warn'),
      error: (msg: unknown) => state.log.push(`[${name}:error] ${String(msg)}`),
    };
  };

  const showMessage = (kind: 'info' | 'warning' | 'error') => (text: string, ...items: any[]) => {
    const labels = items.filter((i) => typeof i === 'string' || (i && typeof i.title === 'string')).map((i) => (typeof i === 'string' ? i : i.title));
    state.messages.push({ kind, text, items: labels });
    return Promise.resolve(state.answer(text, labels));
  };

  const configuration = (section?: string) => {
    const prefix = section ? `${section}.` : '';
    return {
      get: (key: string, dflt?: unknown) => (`${prefix}${key}` in state.settings ? state.settings[`${prefix}${key}`] : dflt),
      has: (key: string) => `${prefix}${key}` in state.settings,
      inspect: (key: string) => {
        const full = `${prefix}${key}`;
        return full in state.settings ? { key: full, globalValue: state.settings[full] } : { key: full };
      },
      update: () => Promise.resolve(),
    };
  };

  const vscode: Record<string, unknown> = {
    version: '1.106.0',
    EventEmitter,
    Disposable,
    Uri,
    Position,
    Range,
    Selection,
    CancellationTokenSource,
    CancellationError,
    MarkdownString,
    ThemeColor,
    ThemeIcon,
    StatusBarAlignment: { Left: 1, Right: 2 },
    ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
    ViewColumn: { Active: -1, Beside: -2, One: 1 },
    QuickPickItemKind: { Separator: -1, Default: 0 },
    DiagnosticSeverity: { Error: 0, Warning: 1, Information: 2, Hint: 3 },
    LogLevel: { Off: 0, Trace: 1, Debug: 2, Info: 3, Warning: 4, Error: 5 },
    window: namespace({
      get activeTextEditor() {
        return state.activeTextEditor;
      },
      visibleTextEditors: [],
      tabGroups: { all: [], onDidChangeTabs: noopEvent, onDidChangeTabGroups: noopEvent },
      createOutputChannel: outputChannel,
      createStatusBarItem: () => {
        const item = { text: '', tooltip: undefined as unknown, command: undefined as string | undefined, name: '', show: () => undefined, hide: () => undefined, dispose: () => undefined };
        state.statusItems.push(item);
        return item;
      },
      showInformationMessage: showMessage('info'),
      showWarningMessage: showMessage('warning'),
      showErrorMessage: showMessage('error'),
      setStatusBarMessage: (text: string) => {
        state.messages.push({ kind: 'info', text, items: [] });
        return new Disposable();
      },
      withProgress: async (opts: { title?: string; location: number }, task: (progress: unknown, token: unknown) => Promise<unknown>) => {
        const cts = new CancellationTokenSource();
        const record = { title: opts.title ?? '', location: opts.location, reports: [] as { message?: string; increment?: number }[] };
        state.progress.push(record);
        return task({ report: (r: { message?: string; increment?: number }) => record.reports.push(r) }, cts.token);
      },
      showInputBox: (opts: { validateInput?: (v: string) => string | undefined }) => {
        const value = state.inputBox;
        if (value !== undefined && opts.validateInput?.(value) !== undefined) throw new Error(`input rejected: ${value}`);
        return Promise.resolve(value);
      },
      createQuickPick: () => {
        const accept = new EventEmitter<void>();
        const hide = new EventEmitter<void>();
        const button = new EventEmitter<{ item: unknown; button: unknown }>();
        const qp: any = {
          items: [],
          selectedItems: [],
          busy: false,
          visible: false,
          show: () => (qp.visible = true),
          hide: () => {
            if (!qp.visible) return;
            qp.visible = false;
            hide.fire();
          },
          dispose: () => undefined,
          onDidAccept: accept.event,
          onDidHide: hide.event,
          onDidTriggerItemButton: button.event,
          accept: (item: unknown) => {
            qp.selectedItems = [item];
            accept.fire();
          },
          triggerButton: (item: unknown) => button.fire({ item, button: undefined }),
        };
        state.quickPicks.push(qp);
        return qp;
      },
      showTextDocument: (doc: any) => {
        state.shownDocuments.push(String(doc?.uri ?? doc));
        return Promise.resolve({ document: doc });
      },
      createWebviewPanel: (_type: string, title: string) => {
        const receive = new EventEmitter<unknown>();
        const dispose = new EventEmitter<void>();
        const record = { title, html: '', messages: [] as any[], disposed: false, receive };
        state.panels.push(record);
        return {
          title,
          webview: {
            cspSource: 'vscode-webview:',
            set html(v: string) {
              record.html = v;
            },
            get html() {
              return record.html;
            },
            postMessage: (m: unknown) => {
              record.messages.push(m);
              return Promise.resolve(true);
            },
            onDidReceiveMessage: receive.event,
          },
          onDidDispose: dispose.event,
          reveal: () => undefined,
          dispose: () => {
            record.disposed = true;
            dispose.fire();
          },
        };
      },
    }),
    workspace: namespace({
      get textDocuments() {
        return state.textDocuments;
      },
      notebookDocuments: [],
      workspaceFolders: undefined,
      isTrusted: true,
      getConfiguration: configuration,
      onDidOpenTextDocument: state.didOpen.event,
      createFileSystemWatcher: () => ({ onDidCreate: noopEvent, onDidChange: noopEvent, onDidDelete: noopEvent, dispose: () => undefined }),
      getWorkspaceFolder: () => undefined,
      openTextDocument: (arg: any) => Promise.resolve(arg instanceof Uri ? textDocument(arg.fsPath, 'markdown', '') : textDocument('/untitled', 'markdown', String(arg?.content ?? ''))),
      applyEdit: () => Promise.resolve(true),
      // The real file system: a missing file rejects, as VS Code's FileSystemError does.
      fs: { stat: (uri: Uri) => fsp.stat(uri.fsPath).then((st) => ({ type: st.isDirectory() ? 2 : 1, size: st.size })) },
    }),
    languages: namespace({
      match: (selector: any, doc: any): number => {
        const filters = Array.isArray(selector) ? selector : [selector];
        return filters.some((f: any) => (f.language === undefined || f.language === doc.languageId) && (f.scheme === undefined || f.scheme === doc.uri.scheme)) ? 10 : 0;
      },
      createDiagnosticCollection: () => ({ set: () => undefined, delete: () => undefined, clear: () => undefined, dispose: () => undefined, forEach: () => undefined, get: () => [], has: () => false }),
      getDiagnostics: () => [],
    }),
    commands: namespace({
      registerCommand: (id: string, fn: (...args: any[]) => unknown) => {
        if (state.commands.has(id)) throw new Error(`command '${id}' already exists`);
        state.commands.set(id, fn);
        return new Disposable(() => state.commands.delete(id));
      },
      executeCommand: (id: string, ...args: unknown[]) => {
        state.executed.push({ command: id, args });
        if (id === 'markdown.api.render') return Promise.resolve(`<p>${String(args[0])}</p>`);
        const fn = state.commands.get(id);
        return Promise.resolve(fn ? fn(...args) : undefined);
      },
    }),
    extensions: namespace({ getExtension: () => undefined }),
    env: namespace({ appName: 'Visual Studio Code', language: 'en', remoteName: undefined, clipboard: { writeText: () => Promise.resolve() }, openExternal: () => Promise.resolve(true) }),
    l10n: namespace({ t: (s: string) => s }),
  };

  // Unknown classes and enums (CompletionItem, CodeActionKind.QuickFix, ...).
  const proxy = new Proxy(vscode, {
    get(target, prop: string | symbol) {
      if (typeof prop === 'symbol') return undefined;
      if (prop in target) return target[prop];
      // `__esModule` keeps TypeScript's __importStar from copying only the known members.
      if (prop === '__esModule') return true;
      if (prop === 'default' || prop === 'then') return undefined;
      if (/^[A-Z]/.test(prop)) {
        const generic = class {
          static [key: string]: any;
          constructor(...args: unknown[]) {
            Object.assign(this, { args });
          }
        };
        const enumLike = new Proxy(generic, {
          get(cls: any, member: string | symbol) {
            if (member in cls) return cls[member];
            return typeof member === 'string' ? `${prop}.${member}` : undefined;
          },
        });
        target[prop] = enumLike;
        return enumLike;
      }
      return namespace({});
    },
  });
  return { vscode: proxy, state };
}
