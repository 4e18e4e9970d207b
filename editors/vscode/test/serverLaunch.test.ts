import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandPath, findExecutable, launchCandidates, notFoundMessage, resolveLaunch, splitCommandLine } from '../src/serverLaunch';

const base = { extraArgs: [] as string[], platform: 'linux' as NodeJS.Platform, home: '/home/u' };

test('default command falls back to the Python extension interpreter, then python3', () => {
  const c = launchCandidates({ ...base, configuredCommand: 'aethel-lsp', pythonExtensionInterpreter: '/proj/.venv/bin/python' });
  assert.deepEqual(
    c.map((x) => x.label),
    ['aethel-lsp', '/proj/.venv/bin/python -m aethel_lsp', 'python3 -m aethel_lsp', 'python -m aethel_lsp'],
  );
  assert.deepEqual(c[1]?.args, ['-m', 'aethel_lsp']);
  assert.equal(c[0]?.needsModule, false);
  assert.equal(c[1]?.needsModule, true);
});

test('an explicit command is the only candidate (no silent fallback)', () => {
  const c = launchCandidates({ ...base, configuredCommand: '~/venvs/a/bin/aethel-lsp', extraArgs: ['--log-file', '/tmp/x'], pythonExtensionInterpreter: '/p' });
  assert.equal(c.length, 1);
  assert.equal(c[0]?.command, '/home/u/venvs/a/bin/aethel-lsp');
  assert.deepEqual(c[0]?.args, ['--log-file', '/tmp/x']);
});

test('a command line with arguments and quotes', () => {
  assert.deepEqual(splitCommandLine('python3 -m aethel_lsp'), ['python3', '-m', 'aethel_lsp']);
  assert.deepEqual(splitCommandLine(' "/opt/my tools/python"  -m  aethel_lsp '), ['/opt/my tools/python', '-m', 'aethel_lsp']);
  assert.deepEqual(splitCommandLine("a '' b"), ['a', '', 'b']);
  const c = launchCandidates({ ...base, configuredCommand: '${workspaceFolder}/.venv/bin/python -m aethel_lsp', workspaceFolder: '/ws' });
  assert.equal(c[0]?.command, '/ws/.venv/bin/python');
  assert.deepEqual(c[0]?.args, ['-m', 'aethel_lsp']);
  assert.equal(expandPath('~', '/h'), '/h');
  assert.equal(expandPath('a~b', '/h'), 'a~b');
});

test('an empty setting means the default', () => {
  assert.equal(launchCandidates({ ...base, configuredCommand: '  ' })[0]?.command, 'aethel-lsp');
});

test('Windows tries python and py', () => {
  const c = launchCandidates({ ...base, platform: 'win32', configuredCommand: 'aethel-lsp' });
  assert.deepEqual(c.map((x) => x.command), ['aethel-lsp', 'python', 'py']);
});

test('findExecutable looks on PATH, and at paths directly', () => {
  const files = new Set(['/usr/bin/python3', '/home/u/.local/bin/aethel-lsp', '/abs/tool']);
  const isFile = (p: string) => files.has(p);
  const env = { PATH: '/usr/bin::/home/u/.local/bin' };
  assert.equal(findExecutable('aethel-lsp', env, 'linux', isFile), '/home/u/.local/bin/aethel-lsp');
  assert.equal(findExecutable('python3', env, 'linux', isFile), '/usr/bin/python3');
  assert.equal(findExecutable('/abs/tool', env, 'linux', isFile), '/abs/tool');
  assert.equal(findExecutable('./missing', env, 'linux', isFile), undefined);
  assert.equal(findExecutable('nope', {}, 'linux', isFile), undefined);
});

test('resolveLaunch: first that exists and, for a Python, imports aethel_lsp', async () => {
  const candidates = launchCandidates({ ...base, configuredCommand: 'aethel-lsp', pythonExtensionInterpreter: '/venv/bin/python' });
  const found = new Map([
    ['/venv/bin/python', '/venv/bin/python'],
    ['python3', '/usr/bin/python3'],
  ]);
  const imports = new Set(['/usr/bin/python3']);
  const r = await resolveLaunch(candidates, { find: (c) => found.get(c), canImport: (p) => Promise.resolve(imports.has(p)) });
  assert.deepEqual(r.chosen, { command: '/usr/bin/python3', args: ['-m', 'aethel_lsp'], label: 'python3 -m aethel_lsp', kind: 'python' });
  assert.deepEqual(r.tried, ['aethel-lsp', '/venv/bin/python -m aethel_lsp', 'python3 -m aethel_lsp']);

  const none = await resolveLaunch(candidates, { find: () => undefined, canImport: () => Promise.resolve(true) });
  assert.equal(none.chosen, undefined);
  const msg = notFoundMessage(none.tried);
  assert.match(msg, /not found \(tried `aethel-lsp`, `\/venv\/bin\/python -m aethel_lsp`, `python3 -m aethel_lsp`, `python -m aethel_lsp`\)/);
  assert.match(msg, /aethel\.server\.command/);
  assert.match(msg, /pipx install/);
});

test('not found: a configured command is named, with the settings tab it came from', () => {
  const msg = notFoundMessage(['/opt/x/aethel-lsp'], { command: '/opt/x/aethel-lsp', where: 'Remote settings' });
  assert.match(msg, /command `\/opt\/x\/aethel-lsp` was not found \("aethel\.server\.command" in Remote settings\)/);
  // The default command: the list of what was tried, as before.
  assert.match(notFoundMessage(['aethel-lsp'], { command: 'aethel-lsp', where: 'the default' }), /tried `aethel-lsp`/);
});
