import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildConfigurationProperties, parseConfigurationDoc, parseScalar, toConfigProperty } from '../src/settingsSchema';
import { answerConfigurationItem, explicitServerSettings, explicitValue, ignoredUserValue, machineValue, settingsCommandFor } from '../src/settingsFilter';

const DOC = [
  '| key | type | default | meaning |',
  '|---|---|---|---|',
  '| `engine` | `"auto"` \\| `"ollama"` | `"auto"` | `auto`: pick one |',
  '| `host` | string | `http://127.0.0.1:11434` | ollama host |',
  '| `completion.maxTokens` | int | `64` | budget |',
  '| `temperature` | float | `0.2` | t |',
  '| `completion.enabled` | bool | `true` | on/off |',
  '| `actions.enabled` | list of strings | all | which: `explain`, `fix` |',
  '| `completion.disabledLanguages` | list of strings | `[]` | ids |',
  'not a row | `x` |',
].join('\n');

test('the docs table becomes typed VS Code properties', () => {
  const rows = parseConfigurationDoc(DOC);
  assert.deepEqual(rows.map((r) => r.key), ['engine', 'host', 'completion.maxTokens', 'temperature', 'completion.enabled', 'actions.enabled', 'completion.disabledLanguages']);
  const props = buildConfigurationProperties(DOC);
  assert.deepEqual(props['aethel.engine']?.enum, ['auto', 'ollama']);
  assert.equal(props['aethel.engine']?.default, 'auto');
  assert.equal(props['aethel.host']?.default, 'http://127.0.0.1:11434');
  assert.equal(props['aethel.host']?.scope, 'machine');
  assert.equal(props['aethel.host']?.markdownDescription, 'Ollama host');
  assert.deepEqual([props['aethel.completion.maxTokens']?.type, props['aethel.completion.maxTokens']?.default], ['integer', 64]);
  assert.deepEqual([props['aethel.temperature']?.type, props['aethel.temperature']?.default], ['number', 0.2]);
  assert.deepEqual([props['aethel.completion.enabled']?.type, props['aethel.completion.enabled']?.default], ['boolean', true]);
  assert.deepEqual(props['aethel.actions.enabled']?.default, ['explain', 'fix']);
  assert.deepEqual(props['aethel.actions.enabled']?.items, { type: 'string', enum: ['explain', 'fix'] });
  assert.deepEqual(props['aethel.completion.disabledLanguages']?.default, []);
  // the extension's own settings come last
  assert.equal(props['aethel.server.command']?.default, 'aethel-lsp');
  assert.deepEqual(Object.keys(props).slice(-3), ['aethel.server.command', 'aethel.server.args', 'aethel.trace.server']);
});

test('an unknown type in the docs is an error, not a silently wrong schema', () => {
  assert.throws(() => toConfigProperty({ key: 'x', type: 'map', default: '`{}`', meaning: '' }, 0), /does not know: map/);
  assert.throws(() => parseScalar('`yes`', 'bool'), /not a boolean/);
  assert.throws(() => parseScalar('`1.5`', 'int'), /not an integer/);
});

test('only explicitly set values go to the server, nested, without the extension keys', () => {
  const inspected: Record<string, object> = {
    host: { globalValue: 'http://127.0.0.1:9999', workspaceValue: 'http://evil.example:11434' },
    model: { globalValue: 'a', workspaceValue: 'b' },
    'completion.enabled': { workspaceFolderValue: false, globalValue: true },
    'completion.maxTokens': {}, // default only
    'server.command': { globalValue: '/x' },
    allowRemoteHostFromWorkspace: { workspaceValue: true },
  };
  const keys = ['host', 'model', 'completion.enabled', 'completion.maxTokens', 'server.command', 'allowRemoteHostFromWorkspace', 'temperature'];
  const s = explicitServerSettings(keys, (k) => inspected[k]);
  assert.deepEqual(s, { host: 'http://127.0.0.1:9999', model: 'b', completion: { enabled: false } });
  assert.equal(explicitValue('allowRemoteHostFromWorkspace', { globalValue: true }), true);
  assert.equal(explicitValue('x', undefined), undefined);
});

test('answering workspace/configuration items', () => {
  const s = { model: 'm', completion: { enabled: false } };
  assert.deepEqual(answerConfigurationItem('aethel', s), s);
  assert.deepEqual(answerConfigurationItem('aethel.completion', s), { enabled: false });
  assert.equal(answerConfigurationItem('aethel.completion.enabled', s), false);
  assert.equal(answerConfigurationItem('aethel.maxTokens', s), null);
  assert.equal(answerConfigurationItem('aethel.model.x', s), null);
  assert.equal(answerConfigurationItem('editor', s), undefined);
  assert.equal(answerConfigurationItem(undefined, s), undefined);
});

test('machine settings in a remote window: the Remote value, else the default, at every start', () => {
  // Remote settings: where VS Code applies machine settings in a remote window.
  assert.deepEqual(machineValue({ globalValue: 'r', globalRemoteValue: 'r', globalLocalValue: 'u' }, true), { value: 'r', source: 'remote' });
  // Only in User settings: VS Code shows it at window load and drops it after the first
  // change; we never use it there (a restart behaves like the first start) and say so.
  assert.deepEqual(machineValue({ globalValue: 'u', globalLocalValue: 'u' }, true), { value: undefined, source: 'default' });
  assert.equal(ignoredUserValue({ globalValue: 'u', globalLocalValue: 'u' }, true), 'u');
  assert.equal(ignoredUserValue({ globalValue: 'r', globalRemoteValue: 'r', globalLocalValue: 'u' }, true), undefined);
  assert.equal(ignoredUserValue({ globalValue: 'u' }, false), undefined);
  assert.deepEqual(machineValue({}, true), { value: undefined, source: 'default' });
  // A local window: the User value, never the workspace's.
  assert.deepEqual(machineValue({ globalValue: 'u', workspaceValue: 'w' }, false), { value: 'u', source: 'user' });
  assert.equal(explicitValue('host', { globalRemoteValue: 'http://h:1', workspaceValue: 'http://evil' }, true), 'http://h:1');
  assert.equal(explicitValue('host', { globalValue: 'http://u:1', globalLocalValue: 'http://u:1' }, true), undefined);
  assert.equal(explicitValue('host', { globalValue: 'http://u:1', workspaceValue: 'http://evil' }, false), 'http://u:1');
  // "Open Settings" goes to the tab that lists the key.
  assert.equal(settingsCommandFor(true), 'workbench.action.openRemoteSettings');
  assert.equal(settingsCommandFor(false), 'workbench.action.openSettings');
});
