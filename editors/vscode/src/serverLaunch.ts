/**
 * How the extension finds the server: `aethel.server.command` (default `aethel-lsp`), then
 * `<Python extension's interpreter> -m aethel_lsp`, then `python3 -m aethel_lsp`. Probing is
 * injected (file lookup, "can this Python import aethel_lsp?") so the order and the
 * not-found message are unit-tested; extension.ts supplies the real probes. No `vscode`.
 */

import * as path from 'node:path';

export const DEFAULT_SERVER_COMMAND = 'aethel-lsp';
export const PYTHON_MODULE = 'aethel_lsp';

export type CandidateKind = 'configured' | 'python-extension' | 'python';

export interface LaunchCandidate {
  command: string;
  args: string[];
  kind: CandidateKind;
  /** How to show it to a person: `aethel-lsp`, `/venv/bin/python -m aethel_lsp`. */
  label: string;
  /** Only usable when this interpreter can `import aethel_lsp`. */
  needsModule: boolean;
}

export interface LaunchInputs {
  configuredCommand: string;
  extraArgs: readonly string[];
  pythonExtensionInterpreter?: string;
  platform: NodeJS.Platform;
  home: string;
  workspaceFolder?: string;
}

/** Split a command line on spaces, honouring "double" and 'single' quotes. */
export function splitCommandLine(line: string): string[] {
  const out: string[] = [];
  let current = '';
  let quote: '"' | "'" | undefined;
  let started = false;
  for (const ch of line) {
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
      else current += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      started = true;
    } else if (/\s/.test(ch)) {
      if (started) out.push(current);
      current = '';
      started = false;
    } else {
      current += ch;
      started = true;
    }
  }
  if (started) out.push(current);
  return out;
}

/** `~/x` and `${workspaceFolder}/x`, the two forms people write in settings. */
export function expandPath(value: string, home: string, workspaceFolder?: string): string {
  let v = value;
  if (v === '~' || v.startsWith('~/')) v = home + v.slice(1);
  if (workspaceFolder !== undefined) v = v.split('${workspaceFolder}').join(workspaceFolder);
  return v;
}

/** The ordered list of ways to start the server. */
export function launchCandidates(inputs: LaunchInputs): LaunchCandidate[] {
  const configured = inputs.configuredCommand.trim() || DEFAULT_SERVER_COMMAND;
  const words = splitCommandLine(configured).map((w) => expandPath(w, inputs.home, inputs.workspaceFolder));
  const [command = DEFAULT_SERVER_COMMAND, ...args] = words;
  const fullArgs = [...args, ...inputs.extraArgs];
  const first: LaunchCandidate = {
    command,
    args: fullArgs,
    kind: 'configured',
    label: [command, ...fullArgs].join(' '),
    needsModule: false,
  };
  // A command the user chose explicitly is the only one we try: no silent fallback.
  if (configured !== DEFAULT_SERVER_COMMAND) return [first];
  const out = [first];
  const moduleArgs = ['-m', PYTHON_MODULE, ...inputs.extraArgs];
  if (inputs.pythonExtensionInterpreter) {
    const py = inputs.pythonExtensionInterpreter;
    out.push({ command: py, args: moduleArgs, kind: 'python-extension', label: `${py} -m ${PYTHON_MODULE}`, needsModule: true });
  }
  const pythons = inputs.platform === 'win32' ? ['python', 'py'] : ['python3', 'python'];
  for (const py of pythons) {
    if (out.some((c) => c.command === py)) continue;
    out.push({ command: py, args: moduleArgs, kind: 'python', label: `${py} -m ${PYTHON_MODULE}`, needsModule: true });
  }
  return out;
}

/** Where `command` would be found: a path that exists, or the first match on PATH. */
export function findExecutable(
  command: string,
  env: { PATH?: string; PATHEXT?: string },
  platform: NodeJS.Platform,
  isFile: (p: string) => boolean,
): string | undefined {
  const exts = platform === 'win32' ? ['', ...(env.PATHEXT ?? '.EXE;.CMD;.BAT;.COM').split(';').filter(Boolean)] : [''];
  const hasDir = command.includes('/') || (platform === 'win32' && command.includes('\\'));
  if (hasDir || path.isAbsolute(command)) {
    for (const ext of exts) if (isFile(command + ext)) return command + ext;
    return undefined;
  }
  const sep = platform === 'win32' ? ';' : ':';
  for (const dir of (env.PATH ?? '').split(sep)) {
    if (dir === '') continue;
    for (const ext of exts) {
      const candidate = path.join(dir, command + ext);
      if (isFile(candidate)) return candidate;
    }
  }
  return undefined;
}

export interface Probes {
  find(command: string): string | undefined;
  /** Resolves true when `python -c "import aethel_lsp"` succeeds. */
  canImport(python: string): Promise<boolean>;
}

export interface LaunchResolution {
  chosen?: { command: string; args: string[]; label: string; kind: CandidateKind };
  tried: string[];
}

/** The first candidate that exists (and, for a Python, can import the server). */
export async function resolveLaunch(candidates: readonly LaunchCandidate[], probes: Probes): Promise<LaunchResolution> {
  const tried: string[] = [];
  for (const c of candidates) {
    tried.push(c.label);
    const found = probes.find(c.command);
    if (found === undefined) continue;
    if (c.needsModule && !(await probes.canImport(found))) continue;
    return { chosen: { command: found, args: c.args, label: c.label, kind: c.kind }, tried };
  }
  return { tried };
}

/** The configured `aethel.server.command`, and which Settings tab it came from. */
export interface ConfiguredCommand {
  command: string;
  /** `Remote settings`, `User settings`, `the default`. */
  where: string;
}

/** What the user reads when nothing could start the server. */
export function notFoundMessage(tried: readonly string[], configured?: ConfiguredCommand): string {
  if (configured !== undefined && configured.command.trim() !== '' && configured.command.trim() !== DEFAULT_SERVER_COMMAND) {
    return (
      `Aethel: the language server command \`${configured.command.trim()}\` was not found ` +
      `("aethel.server.command" in ${configured.where}). Fix the path there, or clear the setting to ` +
      'use `aethel-lsp` from PATH (install it from a checkout of aethel-lsp with `pipx install .`).'
    );
  }
  const list = tried.map((t) => `\`${t}\``).join(', ');
  return (
    `Aethel: the aethel-lsp language server was not found (tried ${list}). ` +
    'Install it from a checkout of aethel-lsp with `pipx install .` (or `pip install -e .` in the Python ' +
    'environment VS Code uses), or set "aethel.server.command" to its full path.'
  );
}
