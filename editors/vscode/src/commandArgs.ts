/**
 * Arguments of the server's commands, built from the editor state (issue 4: one object in
 * `arguments[0]`, camelCase, LSP positions). Pure: positions are plain `{line, character}`
 * so this is unit-tested without VS Code; extension.ts converts from `vscode.Selection`.
 */

export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

export interface ExecuteCommandParams {
  command: string;
  arguments: unknown[];
}

export interface SelectionArgs {
  uri: string;
  range: Range;
}

export interface GenerateArgs extends SelectionArgs {
  description?: string;
}

export function isEmptyRange(r: Range): boolean {
  return r.start.line === r.end.line && r.start.character === r.end.character;
}

/** Order the two ends (a selection made upwards has its anchor after its active end). */
export function normalizeRange(r: Range): Range {
  const before = r.start.line < r.end.line || (r.start.line === r.end.line && r.start.character <= r.end.character);
  return before ? r : { start: r.end, end: r.start };
}

/** The whole line `line` (the cursor's line when nothing is selected). */
export function lineRange(line: number, lineLength: number): Range {
  return { start: { line, character: 0 }, end: { line, character: lineLength } };
}

/**
 * The range an action works on: the selection, or with nothing selected the cursor's line
 * (so "Explain selection" on a cursor explains that line rather than failing).
 */
export function effectiveRange(selection: Range, lineLength: (line: number) => number): Range {
  const r = normalizeRange(selection);
  if (!isEmptyRange(r)) return r;
  return lineRange(r.start.line, lineLength(r.start.line));
}

function contains(r: Range, p: Position): boolean {
  const afterStart = p.line > r.start.line || (p.line === r.start.line && p.character >= r.start.character);
  const beforeEnd = p.line < r.end.line || (p.line === r.end.line && p.character <= r.end.character);
  return afterStart && beforeEnd;
}

/** "Fix with AI": the selection, else the first diagnostic under the cursor, else the line. */
export function fixRange(selection: Range, diagnostics: readonly Range[], lineLength: (line: number) => number): Range {
  const r = normalizeRange(selection);
  if (!isEmptyRange(r)) return r;
  const hit = diagnostics.find((d) => contains(d, r.start));
  return hit ?? lineRange(r.start.line, lineLength(r.start.line));
}

export function selectionArgs(uri: string, range: Range): SelectionArgs {
  return { uri, range };
}

export function generateArgs(uri: string, range: Range, description?: string): GenerateArgs {
  const d = description?.trim();
  return d ? { uri, range, description: d } : { uri, range };
}

/**
 * Should "Generate Aethel contract" ask for a description? Not when the server has one
 * already: a selection, a `#` comment line at the cursor, or an empty file (issue 4).
 */
export function needsDescription(selectedText: string, cursorLineText: string, documentText: string): boolean {
  if (selectedText.trim() !== '') return false;
  if (/^\s*(#|\/\/|--|;)/.test(cursorLineText) && cursorLineText.replace(/^\s*(#|\/\/|--|;)+/, '').trim() !== '') return false;
  return documentText.trim() !== '';
}

/** A diagnostic as the server reads it in "Fix with AI" (`diagnostics`: LSP objects). */
export interface DiagnosticArg {
  range: Range;
  message: string;
  severity?: 1 | 2 | 3 | 4;
  source?: string;
  code?: string | number;
}

function overlaps(a: Range, b: Range): boolean {
  const before = (p: Position, q: Position) => p.line < q.line || (p.line === q.line && p.character < q.character);
  return !before(a.end, b.start) && !before(b.end, a.start);
}

/** "Fix with AI": the range plus the problems reported on it, so the model knows what to fix. */
export function fixArgs(uri: string, range: Range, diagnostics: readonly DiagnosticArg[]): SelectionArgs & { diagnostics?: DiagnosticArg[] } {
  const relevant = diagnostics.filter((d) => overlaps(d.range, range));
  return relevant.length > 0 ? { uri, range, diagnostics: relevant } : { uri, range };
}

/** VS Code's DiagnosticSeverity (0 = Error) -> LSP's (1 = Error). */
export function lspSeverity(vscodeSeverity: number): 1 | 2 | 3 | 4 {
  return (Math.min(3, Math.max(0, vscodeSeverity)) + 1) as 1 | 2 | 3 | 4;
}

export type ModelTask = 'chat' | 'completion';

export function selectModelArgs(model: string, task?: ModelTask): { model: string; task?: ModelTask } {
  return task ? { model, task } : { model };
}

export function pullModelArgs(model: string): { model: string } {
  return { model: model.trim() };
}

/** `workspace/executeCommand` params: no argument -> `[]`, else the one object. */
export function executeCommandParams(command: string, args?: object): ExecuteCommandParams {
  return { command, arguments: args === undefined ? [] : [args] };
}

/** Validate a model name typed by the user (`name[:tag]`, optional `namespace/`). */
export function validateModelName(input: string): string | undefined {
  const name = input.trim();
  if (name === '') return 'Type a model name, e.g. qwen2.5-coder:1.5b';
  if (!/^[A-Za-z0-9][A-Za-z0-9._\-/]*(:[A-Za-z0-9._-]+)?$/.test(name)) {
    return 'A model name looks like `name:tag` (letters, digits, . _ - /), e.g. qwen2.5-coder:1.5b';
  }
  return undefined;
}
