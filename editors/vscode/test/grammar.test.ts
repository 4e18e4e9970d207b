/**
 * The TextMate grammar, tokenized by the same engine VS Code uses (vscode-textmate with
 * the Oniguruma regex library), on the project's Aethel examples.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vsctm from 'vscode-textmate';
import * as oniguruma from 'vscode-oniguruma';
import { EXTENSION_ROOT, REPO_ROOT } from './paths';

async function loadGrammar(): Promise<vsctm.IGrammar> {
  const wasm = fs.readFileSync(require.resolve('vscode-oniguruma/release/onig.wasm'));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (sources: string[]) => new oniguruma.OnigScanner(sources),
      createOnigString: (s: string) => new oniguruma.OnigString(s),
    }),
    loadGrammar: (scopeName: string) => {
      if (scopeName !== 'source.aethel') return Promise.resolve(null);
      const file = path.join(EXTENSION_ROOT, 'syntaxes', 'aethel.tmLanguage.json');
      return Promise.resolve(vsctm.parseRawGrammar(fs.readFileSync(file, 'utf8'), file));
    },
  });
  const grammar = await registry.loadGrammar('source.aethel');
  assert.ok(grammar, 'grammar loads');
  return grammar;
}

/** Every token as `text => innermost scope`, line by line. */
function tokenize(grammar: vsctm.IGrammar, text: string): { text: string; scopes: string[] }[] {
  let state = vsctm.INITIAL;
  const out: { text: string; scopes: string[] }[] = [];
  for (const line of text.split('\n')) {
    const r = grammar.tokenizeLine(line, state);
    for (const t of r.tokens) out.push({ text: line.slice(t.startIndex, t.endIndex), scopes: t.scopes });
    state = r.ruleStack;
  }
  return out;
}

function scopeOf(tokens: { text: string; scopes: string[] }[], text: string): string {
  const t = tokens.find((x) => x.text === text);
  assert.ok(t, `token ${JSON.stringify(text)} exists`);
  return t.scopes.join(' ');
}

const grammarPromise = loadGrammar();

test('transfer.ae: keywords, names, types, old_ names, operators, numbers, comments', async () => {
  const grammar = await grammarPromise;
  const text = fs.readFileSync(path.join(REPO_ROOT, 'tests', 'fixtures', 'aethel', 'examples', 'transfer.ae'), 'utf8');
  const tokens = tokenize(grammar, text);
  assert.match(scopeOf(tokens, ' Move funds between two accounts; total supply must not change.'), /comment\.line\.number-sign\.aethel/);
  assert.match(scopeOf(tokens, '#'), /punctuation\.definition\.comment\.aethel/);
  assert.match(scopeOf(tokens, 'intent'), /keyword\.declaration\.intent\.aethel/);
  assert.match(scopeOf(tokens, 'transfer'), /entity\.name\.function\.intent\.aethel/);
  assert.match(scopeOf(tokens, 'from'), /variable\.parameter\.aethel/);
  assert.match(scopeOf(tokens, 'Account'), /entity\.name\.type\.aethel/);
  assert.match(scopeOf(tokens, 'guard'), /keyword\.control\.guard\.aethel/);
  assert.match(scopeOf(tokens, 'solve'), /keyword\.control\.solve\.aethel/);
  assert.match(scopeOf(tokens, 'verify'), /keyword\.control\.verify\.aethel/);
  assert.match(scopeOf(tokens, 'priority'), /support\.type\.property-name\.aethel/);
  assert.match(scopeOf(tokens, 'security'), /constant\.other\.setting\.aethel/);
  assert.match(scopeOf(tokens, 'old_from_balance'), /variable\.language\.old\.aethel/);
  assert.match(scopeOf(tokens, 'from_balance'), /variable\.other\.aethel/);
  assert.match(scopeOf(tokens, '>='), /keyword\.operator\.comparison\.aethel/);
  assert.match(scopeOf(tokens, '0'), /constant\.numeric\.aethel/);
  assert.match(scopeOf(tokens, '-'), /keyword\.operator\.arithmetic\.aethel/);
});

test('batches, modifiers, implication, decimals', async () => {
  const grammar = await grammarPromise;
  const tokens = tokenize(
    grammar,
    [
      'atomic_batch payroll {',
      '  intent pay(secret external rate: Rate) {',
      '    guard { secret rate * 2 >= 0.5; (x > 0) ==> (y % 3 != 1); }',
      '    solve { oracle: feed; }',
      '    verify { old_y == y; }',
      '  }',
      '}',
    ].join('\n'),
  );
  assert.match(scopeOf(tokens, 'atomic_batch'), /keyword\.declaration\.batch\.aethel/);
  assert.match(scopeOf(tokens, 'payroll'), /entity\.name\.namespace\.aethel/);
  assert.match(scopeOf(tokens, 'external'), /storage\.modifier\.external\.aethel/);
  assert.match(scopeOf(tokens, 'Rate'), /entity\.name\.type\.aethel/);
  assert.match(scopeOf(tokens, '0.5'), /constant\.numeric\.aethel/);
  assert.match(scopeOf(tokens, '==>'), /keyword\.operator\.implication\.aethel/);
  assert.match(scopeOf(tokens, '!='), /keyword\.operator\.comparison\.aethel/);
  assert.match(scopeOf(tokens, '%'), /keyword\.operator\.arithmetic\.aethel/);
  assert.match(scopeOf(tokens, 'oracle'), /support\.type\.property-name\.aethel/);
  const secrets = tokens.filter((t) => t.text === 'secret');
  assert.equal(secrets.length, 2);
  for (const s of secrets) assert.match(s.scopes.join(' '), /storage\.modifier\.secret\.aethel/);
});

test('constructs that are not Aethel stand out', async () => {
  const grammar = await grammarPromise;
  const tokens = tokenize(grammar, 'guard { a > 0 && b > 0; x = 1; !done; } // not a comment');
  assert.match(scopeOf(tokens, '&&'), /invalid\.illegal/);
  assert.match(scopeOf(tokens, '='), /invalid\.illegal/);
  assert.match(scopeOf(tokens, '!'), /invalid\.illegal/);
  assert.match(scopeOf(tokens, '// not a comment'), /invalid\.illegal/);
  assert.doesNotMatch(scopeOf(tokens, '>'), /invalid/);
});

test('language configuration: # comments, brackets, folding markers', () => {
  const conf = JSON.parse(fs.readFileSync(path.join(EXTENSION_ROOT, 'language-configuration.json'), 'utf8')) as {
    comments: { lineComment: string };
    brackets: string[][];
    autoClosingPairs: { open: string; close: string }[];
    folding: { markers: { start: string; end: string } };
    indentationRules: { increaseIndentPattern: string; decreaseIndentPattern: string };
    wordPattern: string;
  };
  assert.equal(conf.comments.lineComment, '#');
  assert.deepEqual(conf.brackets, [['{', '}'], ['(', ')']]);
  assert.deepEqual(conf.autoClosingPairs.map((p) => p.open + p.close), ['{}', '()']);
  assert.match('  # region helpers', new RegExp(conf.folding.markers.start));
  assert.match('# endregion', new RegExp(conf.folding.markers.end));
  assert.match('intent t(a: A) {', new RegExp(conf.indentationRules.increaseIndentPattern));
  assert.doesNotMatch('# see {', new RegExp(conf.indentationRules.increaseIndentPattern));
  assert.match('    }', new RegExp(conf.indentationRules.decreaseIndentPattern));
  assert.deepEqual('old_x == -3.5'.match(new RegExp(conf.wordPattern, 'g')), ['old_x', '-3.5']);
});

/** A snippet body with every placeholder replaced by its default text. */
function expandSnippet(body: string[]): string {
  return body
    .join('\n')
    .replace(/\$\{\d+:([^}]*)\}/g, '$1')
    .replace(/\$\d+/g, '');
}

test('snippets expand to Aethel the server accepts', async () => {
  const grammar = await grammarPromise;
  const snippets = JSON.parse(fs.readFileSync(path.join(EXTENSION_ROOT, 'snippets', 'aethel.json'), 'utf8')) as Record<string, { prefix: string; body: string[] }>;
  assert.deepEqual(Object.values(snippets).map((s) => s.prefix), ['intent', 'transfer', 'atomic_batch']);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aethel-snippets-'));
  const files: string[] = [];
  for (const [name, s] of Object.entries(snippets)) {
    const text = expandSnippet(s.body);
    const bad = tokenize(grammar, text).filter((t) => t.scopes.some((sc) => sc.startsWith('invalid')));
    assert.deepEqual(bad, [], `${name}: nothing flagged as not-Aethel`);
    if (s.prefix === 'atomic_batch') continue; // an empty batch is a skeleton, not a program
    const file = path.join(dir, `${s.prefix}.ae`);
    fs.writeFileSync(file, text);
    files.push(file);
  }
  // The server's own checker (parser + Z3), when the Python side is installed.
  const python = process.env['AETHEL_PYTHON'] || path.join(REPO_ROOT, '.venv', 'bin', 'python');
  if (fs.existsSync(python) || process.env['AETHEL_PYTHON']) {
    const r = spawnSync(python, ['-m', 'aethel_lsp', 'check', ...files], { encoding: 'utf8', timeout: 60000 });
    assert.equal(r.status, 0, `aethel-lsp check: ${r.stdout}\n${r.stderr}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
});
