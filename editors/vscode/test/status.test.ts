import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatParameters, formatRate, modelPickItems, renderStatus } from '../src/status';

test('ready: sparkle, model and tok/s with one decimal', () => {
  const v = renderStatus({ state: 'ready', engine: 'ollama', host: 'http://127.0.0.1:11434', model: 'qwen2.5-coder:1.5b', tokensPerSecond: 51.66, message: '' });
  assert.equal(v.text, '$(sparkle) qwen2.5-coder:1.5b · 51.7 tok/s');
  assert.equal(v.background, undefined);
  assert.match(v.tooltip, /Engine: ollama at `http:\/\/127\.0\.0\.1:11434`/);
});

test('busy spins; no tok/s before the first generation', () => {
  assert.equal(renderStatus({ state: 'busy', model: 'm', tokensPerSecond: null }).text, '$(loading~spin) m');
  assert.equal(renderStatus({ state: 'busy', model: 'm', tokensPerSecond: 0 }).text, '$(loading~spin) m');
});

test('offline and error are visible, with the server message in the tooltip', () => {
  const off = renderStatus({ state: 'offline', model: 'm', tokensPerSecond: 12, message: 'Ollama is not running at http://127.0.0.1:11434 — start it with `ollama serve`' });
  assert.equal(off.text, '$(debug-disconnect) offline');
  assert.equal(off.background, 'warningBackground');
  assert.match(off.tooltip, /ollama serve/);
  const err = renderStatus({ state: 'error', model: null, message: 'bad' });
  assert.equal(err.text, '$(error) error');
  assert.equal(err.background, 'errorBackground');
  assert.equal(renderStatus({ state: 'error', model: 'x' }).text, '$(error) x');
});

test('no model yet', () => {
  assert.equal(renderStatus({ state: 'ready', model: '' }).text, '$(sparkle) no model');
});

test('tooltip escapes Markdown from the server message', () => {
  assert.match(renderStatus({ state: 'error', message: '<img src=x> *bold*' }).tooltip, /\\<img src=x\\> \\\*bold\\\*/);
});

test('number formatting', () => {
  assert.equal(formatRate(undefined), undefined);
  assert.equal(formatRate(Number.NaN), undefined);
  assert.equal(formatRate(7), '7.0 tok/s');
  assert.equal(formatBytes(4_683_087_332), '4.7 GB');
  assert.equal(formatBytes(986_061_892), '986 MB');
  assert.equal(formatBytes(0), undefined);
  assert.equal(formatParameters(1_543_714_304), '1.5B');
  assert.equal(formatParameters(7_000_000_000), '7B');
  assert.equal(formatParameters(134_515_008), '135M');
});

test('model quick pick: active model first and checked, details from ModelInfo', () => {
  const items = modelPickItems(
    [
      { name: 'zeta:1b', sizeBytes: 1_000_000_000, parameters: 1_000_000_000, quantization: 'Q4_K_M', family: 'llama', capabilities: ['completion'], contextLength: 4096 },
      { name: 'alpha:7b', capabilities: [] },
      { name: 'qwen2.5-coder:1.5b', parameters: 1_543_714_304, quantization: 'Q4_K_M', sizeBytes: 986_061_892, capabilities: ['completion', 'insert'] },
    ],
    'qwen2.5-coder:1.5b',
  );
  assert.deepEqual(items.map((i) => i.model), ['qwen2.5-coder:1.5b', 'alpha:7b', 'zeta:1b']);
  assert.equal(items[0]?.label, '$(check) qwen2.5-coder:1.5b');
  assert.equal(items[0]?.description, '1.5B · Q4_K_M · 986 MB');
  assert.equal(items[0]?.detail, 'completion, insert');
  assert.equal(items[1]?.label, '$(circle-large-outline) alpha:7b');
  assert.equal(items[1]?.description, '');
  assert.equal(items[2]?.detail, 'completion · 4096 ctx');
});

test('model quick pick: embedding-only models are not offered (they cannot write text)', () => {
  const items = modelPickItems(
    [
      { name: 'nomic-embed-text:latest', capabilities: ['embedding'] },
      { name: 'qwen2.5-coder:1.5b', capabilities: ['completion', 'insert'] },
      { name: 'unknown:1b' },
    ],
    undefined,
  );
  assert.deepEqual(items.map((i) => i.model), ['qwen2.5-coder:1.5b', 'unknown:1b']);
});

test('status bar: the model the server picked itself, after a generation used it', () => {
  const p = { state: 'ready' as const, model: null, tokensPerSecond: 50 };
  assert.equal(renderStatus(p).text, '$(sparkle) no model · 50.0 tok/s');
  const view = renderStatus(p, 'qwen2.5-coder:1.5b');
  assert.equal(view.text, '$(sparkle) qwen2.5-coder:1.5b · 50.0 tok/s');
  assert.match(view.tooltip, /picked automatically/);
  // A model set by the user wins over the remembered one.
  assert.equal(renderStatus({ ...p, model: 'llama3.2:latest' }, 'qwen2.5-coder:1.5b').text, '$(sparkle) llama3.2:latest · 50.0 tok/s');
});
