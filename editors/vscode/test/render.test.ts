import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type DistillCandidate, type DistillResult, distillMarkdown, escapeHtml, genericResultMarkdown, isDistillResult, metricsLine, modelStatusMarkdown, throughputMarkdown } from '../src/render';
import { isPanelRequest, makeNonce, panelHtml } from '../src/panelHtml';

test('metrics line', () => {
  assert.equal(metricsLine({ model: 'm', tokensGenerated: 212, latencyMs: 4100, tokensPerSecond: 51.71 }), '212 tokens · 4.1 s · 51.7 tok/s · m');
  assert.equal(metricsLine(null), '');
});

test('model status as tables', () => {
  const md = modelStatusMarkdown({
    available: true, host: 'http://127.0.0.1:11434', engine: 'ollama', version: '0.12.6', activeModel: 'q:1b',
    models: [{ name: 'q:1b', parameters: 1_543_714_304, quantization: 'Q4_K_M', sizeBytes: 986_061_892, contextLength: 32768, capabilities: ['completion', 'insert'] }],
    running: [{ name: 'q:1b', sizeBytes: 1_200_000_000, sizeVram: 0, expiresAt: '2026-11-25T18:00:00Z' }], error: null,
  });
  assert.match(md, /\*\*Available\*\* — engine `ollama` at `http:\/\/127\.0\.0\.1:11434` \(version 0\.12\.6\)/);
  assert.match(md, /\| `q:1b` \| 1\.5B \| Q4_K_M \| 986 MB \| 32768 \| completion, insert \|/);
  assert.match(md, /## Loaded in memory/);
  const off = modelStatusMarkdown({ available: false, host: 'h', engine: 'ollama', error: 'Ollama is not running at h — start it with `ollama serve`', models: [] });
  assert.match(off, /\*\*Not available\*\*/);
  assert.match(off, /> Ollama is not running/);
  assert.match(modelStatusMarkdown('weird'), /"weird"/);
});

test('throughput table', () => {
  const md = throughputMarkdown({
    last: { model: 'q', tokensGenerated: 10, latencyMs: 500, tokensPerSecond: 20 },
    models: { q: { requests: 3, errors: 0, cancelled: 1, tokensGenerated: 30, tokensPerSecond: 20, timeToFirstTokenMsP50: 80.25, timeToFirstTokenMsP95: 120 } },
  });
  assert.match(md, /Last generation: 10 tokens · 0\.5 s · 20\.0 tok\/s · q/);
  assert.match(md, /\| `q` \| 3 \| 0 \| 1 \| 30 \| 20 \| 80\.3 \| 120 \|/);
  assert.match(throughputMarkdown({ last: null, models: {} }), /No generation yet/);
});

test('generic results keep every field', () => {
  const md = genericResultMarkdown('Doctor', { text: '## All good', checks: [1] });
  assert.match(md, /^# Doctor\n\n## All good/);
  assert.match(md, /"checks"/);
  assert.match(genericResultMarkdown('X', [1, 2]), /```json\n\[\n {2}1,/);
});

test('panel HTML: CSP with nonce, title escaped', () => {
  const html = panelHtml({ cspSource: 'vscode-webview:', nonce: 'abc', title: '<b>x</b>' });
  assert.match(html, /script-src 'nonce-abc'/);
  assert.match(html, /<script nonce="abc">/);
  assert.doesNotMatch(html, /<b>x<\/b>/);
  assert.match(html, /&lt;b&gt;x&lt;\/b&gt;/);
  assert.equal(makeNonce().length, 32);
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  assert.equal(isPanelRequest({ type: 'stop' }), true);
  assert.equal(isPanelRequest({ type: 'rm' }), false);
  assert.equal(isPanelRequest(null), false);
});

test('distill result: every candidate with its verdict, the reasons, the chosen contract', () => {
  const result: DistillResult = {
    best: { model: 'coder', provider: 'local', text: 'intent pay() {}\n', valid: true, score: 79.3, reason: 'valid, 0 warnings', costUsd: null },
    candidates: [
      { model: 'coder', provider: 'local', text: 'intent pay() {}\n', valid: true, score: 79.3, reason: 'valid, 0 warnings', costUsd: null },
      { model: 'chat', provider: 'claude', text: 'x', valid: false, score: 24.3, reason: 'syntax: line 1: a | b', costUsd: 0.0012 },
    ],
    explanation: 'Chose #1 (coder): valid.\n#2 (chat) rejected: syntax.',
  };
  assert.ok(isDistillResult(result));
  assert.ok(!isDistillResult({ text: 'x' }));
  const md = distillMarkdown(result);
  assert.match(md, /^# Best of 2: `coder` chosen/);
  assert.match(md, /\| 1 \| ✓ valid \| `coder` \(local\) \| 79\.3 \| valid, 0 warnings \|/);
  assert.match(md, /\| 2 \| ✗ rejected \| `chat` \(claude\) \| 24\.3 · \$0\.0012 \| syntax: line 1: a \\\| b \|/);
  assert.match(md, /- #2 \(chat\) rejected: syntax\./);
  assert.match(md, /```aethel\nintent pay\(\) \{\}\n```/);
  const rejected = result.candidates[1] as DistillCandidate;
  const none = distillMarkdown({ ...result, best: rejected, candidates: [rejected] });
  assert.match(none, /^# Best of 1: no valid candidate/);
  assert.doesNotMatch(none, /Chosen contract/);
});
