import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  effectiveRange,
  fixArgs,
  lspSeverity,
  executeCommandParams,
  fixRange,
  generateArgs,
  needsDescription,
  normalizeRange,
  pullModelArgs,
  selectionArgs,
  selectModelArgs,
  validateModelName,
} from '../src/commandArgs';

const r = (sl: number, sc: number, el: number, ec: number) => ({ start: { line: sl, character: sc }, end: { line: el, character: ec } });
const lengths = (line: number) => [10, 24, 0][line] ?? 0;

test('explain/improve/document: the selection, ordered', () => {
  assert.deepEqual(effectiveRange(r(1, 4, 3, 2), lengths), r(1, 4, 3, 2));
  assert.deepEqual(effectiveRange(r(3, 2, 1, 4), lengths), r(1, 4, 3, 2)); // selected upwards
  assert.deepEqual(normalizeRange(r(2, 5, 2, 1)), r(2, 1, 2, 5));
});

test('nothing selected: the cursor line', () => {
  assert.deepEqual(effectiveRange(r(1, 7, 1, 7), lengths), r(1, 0, 1, 24));
});

test('fix: selection, else the diagnostic under the cursor, else the line', () => {
  const diags = [r(0, 0, 0, 3), r(1, 5, 1, 9)];
  assert.deepEqual(fixRange(r(0, 1, 0, 2), diags, lengths), r(0, 1, 0, 2));
  assert.deepEqual(fixRange(r(1, 6, 1, 6), diags, lengths), r(1, 5, 1, 9));
  assert.deepEqual(fixRange(r(1, 9, 1, 9), diags, lengths), r(1, 5, 1, 9)); // end is inclusive for the cursor
  assert.deepEqual(fixRange(r(1, 1, 1, 1), diags, lengths), r(1, 0, 1, 24));
});

test('executeCommand params: one object in arguments[0], or none (issue 4)', () => {
  const uri = 'file:///tmp/a%20b.py';
  assert.deepEqual(executeCommandParams('aethel.explainSelection', selectionArgs(uri, r(0, 0, 1, 0))), {
    command: 'aethel.explainSelection',
    arguments: [{ uri, range: r(0, 0, 1, 0) }],
  });
  assert.deepEqual(executeCommandParams('aethel.modelStatus'), { command: 'aethel.modelStatus', arguments: [] });
  assert.deepEqual(selectModelArgs('m'), { model: 'm' });
  assert.deepEqual(selectModelArgs('m', 'completion'), { model: 'm', task: 'completion' });
  assert.deepEqual(pullModelArgs('  qwen2.5-coder:1.5b '), { model: 'qwen2.5-coder:1.5b' });
});

test('generate: description only when given', () => {
  const uri = 'file:///c.ae';
  assert.deepEqual(generateArgs(uri, r(0, 0, 0, 0)), { uri, range: r(0, 0, 0, 0) });
  assert.deepEqual(generateArgs(uri, r(0, 0, 0, 0), '   '), { uri, range: r(0, 0, 0, 0) });
  assert.deepEqual(generateArgs(uri, r(0, 0, 0, 0), ' a fee '), { uri, range: r(0, 0, 0, 0), description: 'a fee' });
});

test('generate asks for a description only when the server would have none', () => {
  assert.equal(needsDescription('intent x() {}', '', 'intent x() {}'), false); // a selection
  assert.equal(needsDescription('', '# transfer with a 1% fee to the treasury', 'stuff'), false); // a comment line
  assert.equal(needsDescription('', '', '   \n'), false); // an empty file
  assert.equal(needsDescription('', 'x = 1', 'x = 1'), true);
  assert.equal(needsDescription('', '#', 'x'), true); // an empty comment describes nothing
});

test('model names typed by the user', () => {
  assert.equal(validateModelName('qwen2.5-coder:1.5b'), undefined);
  assert.equal(validateModelName('library/llama3.2'), undefined);
  assert.match(validateModelName('') ?? '', /Type a model name/);
  assert.match(validateModelName('rm -rf /') ?? '', /looks like/);
});

test('fix: the diagnostics on the range travel with it', () => {
  const uri = 'file:///a.ae';
  const d1 = { range: r(1, 5, 1, 9), message: 'expected `;`', severity: 1 as const, source: 'aethel' };
  const d2 = { range: r(7, 0, 7, 3), message: 'elsewhere' };
  assert.deepEqual(fixArgs(uri, r(1, 0, 1, 24), [d1, d2]), { uri, range: r(1, 0, 1, 24), diagnostics: [d1] });
  assert.deepEqual(fixArgs(uri, r(3, 0, 3, 1), [d1, d2]), { uri, range: r(3, 0, 3, 1) });
  assert.deepEqual(fixArgs(uri, r(1, 9, 1, 9), [d1]), { uri, range: r(1, 9, 1, 9), diagnostics: [d1] }); // touching counts
  assert.equal(lspSeverity(0), 1);
  assert.equal(lspSeverity(3), 4);
});
