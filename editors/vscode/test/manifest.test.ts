/**
 * package.json and src/protocol.ts must mirror the server: every command id of
 * `aethel_lsp/protocol.py` has a palette entry (under a forwarding id), and every setting of
 * `docs/configuration.md` is contributed with its type, default and enum.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as proto from '../src/protocol';
import { buildConfigurationProperties, CLIENT_ONLY_SETTINGS, parseConfigurationDoc } from '../src/settingsSchema';
import { EXTENSION_ROOT, REPO_ROOT } from './paths';

interface Manifest {
  name: string;
  publisher: string;
  license: string;
  repository?: { url?: string };
  main: string;
  engines: { vscode: string };
  activationEvents: string[];
  devDependencies: Record<string, string>;
  dependencies: Record<string, string>;
  contributes: {
    commands: { command: string; title: string; category?: string }[];
    menus: Record<string, { command: string }[]>;
    configuration: { properties: Record<string, { type: string; default: unknown; enum?: string[] }> };
    languages: { id: string; extensions: string[]; configuration: string }[];
    grammars: { language: string; scopeName: string; path: string }[];
  };
}

const pkg = JSON.parse(fs.readFileSync(path.join(EXTENSION_ROOT, 'package.json'), 'utf8')) as Manifest;
const protocolPy = fs.readFileSync(path.join(REPO_ROOT, 'aethel_lsp', 'protocol.py'), 'utf8');
const configurationMd = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'configuration.md'), 'utf8');

/** `NAME: Final = "value"` assignments of protocol.py. */
function pyConstants(source: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of source.matchAll(/^([A-Z_]+)\s*:\s*Final\s*=\s*"([^"]*)"/gm)) out.set(m[1] ?? '', m[2] ?? '');
  return out;
}

/** The names listed in `ALL_COMMANDS = (...)`, resolved to their values. */
function pyAllCommands(source: string, constants: Map<string, string>): string[] {
  const block = /^ALL_COMMANDS\s*:\s*Final\s*=\s*\(([\s\S]*?)\)/m.exec(source);
  assert.ok(block, 'protocol.py defines ALL_COMMANDS');
  return [...(block[1] ?? '').matchAll(/([A-Z_]+)/g)].map((m) => {
    const v = constants.get(m[1] ?? '');
    assert.ok(v, `${m[1]} is defined in protocol.py`);
    return v;
  });
}

const pyConsts = pyConstants(protocolPy);
const pyCommands = pyAllCommands(protocolPy, pyConsts);

test('src/protocol.ts mirrors protocol.py (ids, notification, section, titles)', () => {
  assert.ok(pyCommands.length >= 13);
  assert.deepEqual([...proto.ALL_SERVER_COMMANDS], pyCommands);
  for (const [name, value] of pyConsts) {
    if (!/^(CMD_|NOTIFY_|CONFIG_|TITLE_|SERVER_NAME)/.test(name)) continue;
    assert.equal((proto as unknown as Record<string, string>)[name], value, `${name} in src/protocol.ts`);
  }
  // every CMD_* constant is in ALL_COMMANDS
  for (const [name, value] of pyConsts) if (name.startsWith('CMD_')) assert.ok(pyCommands.includes(value), `${name} in ALL_COMMANDS`);
});

test('every server command has a palette entry under a forwarding id, and nothing else', () => {
  const ids = pkg.contributes.commands.map((c) => c.command);
  const expected = [...pyCommands.map(proto.forwardingId), ...Object.values(proto.CLIENT_ONLY_COMMANDS)];
  assert.deepEqual([...ids].sort(), [...expected].sort());
  for (const id of ids) {
    assert.ok(!pyCommands.includes(id), `${id} must not equal a server id (the client registers those itself)`);
    assert.ok(id.startsWith(proto.CLIENT_COMMAND_PREFIX));
  }
  for (const c of pkg.contributes.commands) {
    assert.equal(c.category, 'Aethel', `${c.command} has the Aethel category`);
    assert.ok(c.title.length > 0);
  }
  // Palette titles are the ones in src/protocol.ts (and the action words users filter on).
  for (const id of pyCommands) {
    const entry = pkg.contributes.commands.find((c) => c.command === proto.forwardingId(id));
    assert.equal(entry?.title, proto.COMMAND_TITLES[id as proto.ServerCommand]);
  }
  for (const [menu, entries] of Object.entries(pkg.contributes.menus)) {
    for (const e of entries) assert.ok(ids.includes(e.command), `${menu} refers to a contributed command: ${e.command}`);
  }
});

test('extension.ts never registers a server command id', () => {
  const src = fs.readFileSync(path.join(EXTENSION_ROOT, 'src', 'extension.ts'), 'utf8');
  assert.doesNotMatch(src, /registerCommand\(\s*['"`]aethel\./);
  assert.match(src, /registerCommand\(forwardingId\(id\)/);
  assert.match(src, /configurationSection: CONFIG_SECTION/);
  assert.match(src, /onNotification\(NOTIFY_STATUS/);
});

test('every setting of docs/configuration.md is contributed with its type, default and enum', () => {
  const docs = parseConfigurationDoc(configurationMd);
  assert.ok(docs.length >= 30, `docs/configuration.md lists ${docs.length} settings`);
  const props = pkg.contributes.configuration.properties;
  for (const d of docs) assert.ok(props[`aethel.${d.key}`], `package.json contributes aethel.${d.key}`);
  const extra = Object.keys(props).filter(
    (k) => !docs.some((d) => `aethel.${d.key}` === k) && !Object.keys(CLIENT_ONLY_SETTINGS).some((c) => `aethel.${c}` === k),
  );
  assert.deepEqual(extra, [], 'no setting the server does not know (besides the extension\'s own)');
  // Exact schema: regenerate with `npm run sync-settings` when this fails.
  assert.deepEqual(props, buildConfigurationProperties(configurationMd), 'package.json is in sync with docs/configuration.md');
  // Spot checks against the docs, independent of the generator.
  assert.deepEqual(props['aethel.engine']?.enum, ['auto', 'ollama', 'openai', 'embedded']);
  assert.equal(props['aethel.host']?.default, 'http://127.0.0.1:11434');
  assert.equal(props['aethel.maxTokens']?.type, 'integer');
  assert.equal(props['aethel.temperature']?.default, 0.2);
  assert.equal(props['aethel.completion.enabled']?.default, true);
  assert.deepEqual(props['aethel.logLevel']?.enum, ['error', 'warning', 'info', 'debug']);
});

test('language contribution: .ae files, grammar and configuration files exist', () => {
  const lang = pkg.contributes.languages.find((l) => l.id === proto.LANGUAGE_ID);
  assert.ok(lang);
  assert.deepEqual(lang.extensions, ['.ae']);
  assert.ok(fs.existsSync(path.join(EXTENSION_ROOT, lang.configuration)));
  const grammar = pkg.contributes.grammars.find((g) => g.language === proto.LANGUAGE_ID);
  assert.equal(grammar?.scopeName, 'source.aethel');
  assert.ok(fs.existsSync(path.join(EXTENSION_ROOT, grammar?.path ?? 'missing')));
  assert.ok(pkg.activationEvents.includes('onLanguage:aethel'));
  const snippets = (pkg.contributes as unknown as { snippets: { language: string; path: string }[] }).snippets;
  assert.deepEqual(snippets.map((s) => s.language), ['aethel']);
  assert.ok(fs.existsSync(path.join(EXTENSION_ROOT, snippets[0]?.path ?? 'missing')));
});

test('packaging prerequisites: license, repository, README, engines vs @types/vscode, client 11', () => {
  assert.equal(pkg.license, 'Apache-2.0');
  assert.match(fs.readFileSync(path.join(EXTENSION_ROOT, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);
  assert.ok(pkg.repository?.url);
  assert.ok(fs.existsSync(path.join(EXTENSION_ROOT, 'README.md')));
  assert.equal(pkg.main, './dist/extension.js');
  const engine = /(\d+)\.(\d+)/.exec(pkg.engines.vscode);
  const types = /(\d+)\.(\d+)/.exec(pkg.devDependencies['@types/vscode'] ?? '');
  assert.ok(engine && types);
  // vsce refuses @types/vscode newer than engines.vscode
  assert.ok(Number(types[1]) * 1000 + Number(types[2]) <= Number(engine[1]) * 1000 + Number(engine[2]));
  assert.match(pkg.dependencies['vscode-languageclient'] ?? '', /^\^11\./);
});
