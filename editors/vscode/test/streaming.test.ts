import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyProgressTitle, isExplanationDocument, percentIncrement, ProgressRouter, TextStream, type ProgressValue } from '../src/streaming';

const begin = (title: string): ProgressValue => ({ kind: 'begin', title, cancellable: true, percentage: 0 });
const report = (message: string, percentage?: number): ProgressValue => ({ kind: 'report', message, percentage });
const end = (message: string): ProgressValue => ({ kind: 'end', message });

test('report messages are deltas: their concatenation is the text', () => {
  const s = new TextStream();
  s.apply(begin('Explaining selection'));
  assert.equal(s.state, 'streaming');
  for (const d of ['This ', 'function ', 'adds', ' two numbers.\n', '', '```py\nx\n```']) s.apply(report(d, 10));
  assert.equal(s.text, 'This function adds two numbers.\n```py\nx\n```');
  assert.equal(s.reports, 6);
  s.apply(end('212 tokens · 4.1 s · 51.7 tok/s'));
  assert.equal(s.state, 'done');
  assert.equal(s.endMessage, '212 tokens · 4.1 s · 51.7 tok/s');
  assert.equal(s.apply(report('late')), false);
  assert.equal(s.text.endsWith('late'), false);
});

test('apply says whether something visible changed', () => {
  const s = new TextStream();
  s.apply(begin('Explaining selection'));
  assert.equal(s.apply(report('', undefined)), false);
  assert.equal(s.apply(report('', 5)), true);
  assert.equal(s.apply(report('', 5)), false);
  assert.equal(s.apply(report('a')), true);
  assert.equal(s.percentage, 5);
  s.apply(report('', 250));
  assert.equal(s.percentage, 100);
});

test('titles', () => {
  assert.equal(classifyProgressTitle('Explaining selection'), 'explain');
  assert.equal(classifyProgressTitle('Pulling qwen2.5-coder:1.5b'), 'pull');
  assert.equal(classifyProgressTitle('Generating Aethel contract'), 'generate');
  assert.equal(classifyProgressTitle('Improving selection'), 'improve');
  assert.equal(classifyProgressTitle('Adding documentation'), 'document');
  assert.equal(classifyProgressTitle('Fix with AI'), 'fix');
  assert.equal(classifyProgressTitle('Indexing'), 'other');
});

test('percent increments (VS Code wants deltas)', () => {
  assert.equal(percentIncrement(undefined, 10), 10);
  assert.equal(percentIncrement(10, 35), 25);
  assert.equal(percentIncrement(35, 30), 0);
  assert.equal(percentIncrement(90, 140), 10);
  assert.equal(percentIncrement(10, undefined), 0);
});

test('router: the waiting consumer gets the next begin of its kind, FIFO', () => {
  const router = new ProgressRouter<string>(new Set(['explain', 'pull']));
  const unwaitA = router.wait('explain', 'panel-A');
  router.wait('explain', 'panel-B');
  router.wait('pull', 'pull-1');
  assert.equal(router.handle('t-other', begin('Indexing')), undefined); // not wanted: VS Code shows it
  assert.equal(router.handle('t-other', report('x')), undefined);
  const a = router.handle('t1', begin('Explaining selection'));
  assert.equal(a?.ticket, 'panel-A');
  unwaitA(); // already bound: withdrawing is harmless
  const p = router.handle(2, begin('Pulling m'));
  assert.equal(p?.ticket, 'pull-1');
  assert.equal(p?.token, '2');
  const b = router.handle('t2', begin('Explaining selection'));
  assert.equal(b?.ticket, 'panel-B');
  router.handle('t1', report('one '));
  router.handle('t2', report('B'));
  const last = router.handle('t1', report('two'));
  assert.equal(last?.stream.text, 'one two');
  assert.equal(router.isBound('panel-A'), true);
  const done = router.handle('t1', end('2 tokens'));
  assert.equal(done?.stream.state, 'done');
  assert.equal(done?.value.kind, 'end');
  assert.equal(router.isBound('panel-A'), false);
  assert.equal(router.handle('t1', report('after end')), undefined);
  assert.equal(router.activeCount, 2);
});

test('router: a begin nobody waited for is routed without a ticket, and can be attached', () => {
  const router = new ProgressRouter<string>(new Set(['explain']));
  const cancel = router.wait('explain', 'withdrawn');
  cancel();
  const r = router.handle('tok', begin('Explaining selection'));
  assert.equal(r?.ticket, undefined);
  router.attach('tok', 'late-panel');
  assert.equal(router.handle('tok', report('x'))?.ticket, 'late-panel');
});

test('router: a repeating ticket takes every begin of its kind (repair rounds)', () => {
  const router = new ProgressRouter<string>(new Set(['generate']));
  const unwait = router.wait('generate', 'notification', true);
  assert.equal(router.handle('g1', begin('Generating Aethel contract'))?.ticket, 'notification');
  router.handle('g1', end('done'));
  assert.equal(router.handle('g2', begin('Repairing Aethel contract (round 1)'))?.ticket, 'notification');
  unwait();
  assert.equal(router.handle('g3', begin('Generating Aethel contract'))?.ticket, undefined);
});

test('the explanation file the server shows is recognised', () => {
  assert.equal(isExplanationDocument('file:///home/u/.local/state/aethel-lsp/explanations/explain-20261125-171400-123456.md'), true);
  assert.equal(isExplanationDocument('file:///home/u/notes/README.md'), false);
  assert.equal(isExplanationDocument('file:///a/explain-x.md/other.py'), false);
});
