/**
 * The `contributes.configuration` of package.json, derived from the server's settings
 * reference (`docs/configuration.md`), so the VS Code settings UI mirrors exactly what the
 * server understands: same keys, types, defaults and enums.
 *
 * `npm run sync-settings` regenerates package.json from the docs; `test/manifest.test.ts`
 * fails when they drift. No `vscode` import: this runs in plain node.
 */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** One row of the table in docs/configuration.md. */
export interface SettingDoc {
  key: string;
  type: string;
  default: string;
  meaning: string;
}

/** A VS Code configuration property (the subset we emit). */
export interface ConfigProperty {
  type: string | string[];
  default: JsonValue;
  enum?: string[];
  items?: { type: string; enum?: string[] };
  minimum?: number;
  markdownDescription: string;
  scope?: 'application' | 'machine' | 'machine-overridable' | 'window' | 'resource' | 'language-overridable';
  order?: number;
}

/**
 * Settings that decide where code is sent or what is executed: VS Code must not take them
 * from a workspace's `.vscode/settings.json` (written by whoever wrote the repository).
 * `machine` scope = user settings only; a workspace can still choose a loopback host through
 * `aethel.toml`, where the server applies its own rule (allowRemoteHostFromWorkspace).
 */
export const MACHINE_SCOPED = new Set(['host', 'openai.baseUrl', 'openai.apiKeyEnv', 'embedded.modelPath']);
export const APPLICATION_SCOPED = new Set(['allowRemoteHostFromWorkspace']);

/** Settings of the extension itself; never forwarded to the server. */
export const CLIENT_ONLY_SETTINGS: Record<string, ConfigProperty> = {
  'server.command': {
    type: 'string',
    default: 'aethel-lsp',
    scope: 'machine',
    markdownDescription:
      'Command that starts the language server (stdio). With the default `aethel-lsp`, the extension ' +
      'falls back to `<python> -m aethel_lsp` using the Python extension\'s interpreter, then `python3`. ' +
      'A path (`~/.venv/bin/aethel-lsp`) or a command line (`python3 -m aethel_lsp`) both work.',
  },
  'server.args': {
    type: 'array',
    items: { type: 'string' },
    default: [],
    scope: 'machine',
    markdownDescription:
      'Extra arguments appended to `#aethel.server.command#`, e.g. for a wrapper script. The server itself needs ' +
      'none (it always talks stdio); for more detail in the log set `#aethel.logLevel#` to `debug`.',
  },
  'trace.server': {
    type: 'string',
    enum: ['off', 'messages', 'verbose'],
    default: 'off',
    scope: 'window',
    markdownDescription:
      'Log the LSP messages between VS Code and the server in the "Aethel" output channel. The channel shows ' +
      'them only at log level Trace: run "Developer: Set Log Level…", pick "Aethel", then "Trace".',
  },
};

/** Top-level keys under `aethel.` that belong to the extension, not the server. */
export const CLIENT_ONLY_ROOTS = new Set(['server', 'trace']);

/** Parse the settings table of docs/configuration.md (rows `| \`key\` | type | default | meaning |`). */
export function parseConfigurationDoc(markdown: string): SettingDoc[] {
  const rows: SettingDoc[] = [];
  for (const line of markdown.split(/\r?\n/)) {
    if (!line.startsWith('| `')) continue;
    const cells = splitRow(line);
    if (cells.length < 4) continue;
    const key = stripTicks(cells[0] ?? '');
    if (!/^[A-Za-z][A-Za-z0-9.]*$/.test(key)) continue;
    rows.push({ key, type: (cells[1] ?? '').trim(), default: (cells[2] ?? '').trim(), meaning: (cells[3] ?? '').trim() });
  }
  return rows;
}

/** Split a Markdown table row on `|`, honouring `\|` inside cells. */
function splitRow(line: string): string[] {
  const inner = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  return inner.split(/(?<!\\)\|/).map((cell) => cell.replace(/\\\|/g, '|').trim());
}

function stripTicks(cell: string): string {
  return cell.trim().replace(/^`/, '').replace(/`$/, '');
}

/** Every backticked word of a cell, in order. */
function backticked(cell: string): string[] {
  return [...cell.matchAll(/`([^`]*)`/g)].map((m) => m[1] ?? '');
}

/** Turn one documented setting into a VS Code property; throws on a type it does not know. */
export function toConfigProperty(doc: SettingDoc, order: number): ConfigProperty {
  const prop = baseProperty(doc);
  prop.markdownDescription = capitalize(doc.meaning);
  prop.order = order;
  if (MACHINE_SCOPED.has(doc.key)) prop.scope = 'machine';
  if (APPLICATION_SCOPED.has(doc.key)) prop.scope = 'application';
  return prop;
}

function baseProperty(doc: SettingDoc): ConfigProperty {
  const type = doc.type.replace(/\\\|/g, '|');
  const literals = backticked(type);
  if (literals.length > 0 && literals.every((l) => /^".*"$/.test(l))) {
    const values = literals.map((l) => JSON.parse(l) as string);
    return { type: 'string', enum: values, default: parseScalar(doc.default, 'string'), markdownDescription: '' };
  }
  switch (type) {
    case 'string':
      return { type: 'string', default: parseScalar(doc.default, 'string'), markdownDescription: '' };
    case 'int':
      return { type: 'integer', default: parseScalar(doc.default, 'int'), minimum: 0, markdownDescription: '' };
    case 'float':
      return { type: 'number', default: parseScalar(doc.default, 'float'), minimum: 0, markdownDescription: '' };
    case 'bool':
      return { type: 'boolean', default: parseScalar(doc.default, 'bool'), markdownDescription: '' };
    case 'list of strings':
      return listProperty(doc);
    default:
      throw new Error(`docs/configuration.md: setting ${doc.key} has a type the extension does not know: ${doc.type}`);
  }
}

/** `list of strings`; the default `all` means every value the meaning column lists after a colon. */
function listProperty(doc: SettingDoc): ConfigProperty {
  const raw = stripTicks(doc.default);
  if (raw === 'all') {
    const afterColon = doc.meaning.slice(doc.meaning.indexOf(':') + 1);
    const values = backticked(afterColon);
    if (values.length === 0) throw new Error(`docs/configuration.md: ${doc.key} defaults to "all" but lists no values`);
    return { type: 'array', items: { type: 'string', enum: values }, default: values, markdownDescription: '' };
  }
  const parsed: unknown = JSON.parse(raw);
  if (!Array.isArray(parsed) || !parsed.every((v) => typeof v === 'string')) {
    throw new Error(`docs/configuration.md: ${doc.key} default is not a list of strings: ${doc.default}`);
  }
  return { type: 'array', items: { type: 'string' }, default: parsed, markdownDescription: '' };
}

/** A default cell: `` `"auto"` ``, `` `0.2` ``, `` `true` ``, or a bare string like `` `http://...` ``. */
export function parseScalar(cell: string, kind: 'string' | 'int' | 'float' | 'bool'): JsonValue {
  const raw = stripTicks(cell);
  switch (kind) {
    case 'string':
      return /^".*"$/.test(raw) ? (JSON.parse(raw) as string) : raw;
    case 'int': {
      const n = Number(raw);
      if (!Number.isInteger(n)) throw new Error(`not an integer default: ${cell}`);
      return n;
    }
    case 'float': {
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new Error(`not a number default: ${cell}`);
      return n;
    }
    case 'bool':
      if (raw !== 'true' && raw !== 'false') throw new Error(`not a boolean default: ${cell}`);
      return raw === 'true';
  }
}

/** The whole `contributes.configuration.properties` object, server settings first. */
export function buildConfigurationProperties(markdown: string): Record<string, ConfigProperty> {
  const out: Record<string, ConfigProperty> = {};
  const docs = parseConfigurationDoc(markdown);
  docs.forEach((doc, i) => {
    out[`aethel.${doc.key}`] = toConfigProperty(doc, i);
  });
  let order = docs.length;
  for (const [key, prop] of Object.entries(CLIENT_ONLY_SETTINGS)) {
    out[`aethel.${key}`] = { ...prop, order: order++ };
  }
  return out;
}

/** Settings UI descriptions read as sentences: `ollama host` -> `Ollama host`. */
export function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
