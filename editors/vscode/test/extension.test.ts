/**
 * The extension itself (src/extension.ts with the real vscode-languageclient 11), activated
 * in plain node against a stubbed `vscode` module (test/vscodeStub.ts), starting the REAL
 * server with the fake Ollama: status bar fed by `aethel/status`, palette commands under
 * forwarding ids, and "Explain selection" streaming into the panel before the end.
 * Skipped (with the reason) when the Python side is not installed, like the wire test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Module from 'node:module';
import { createVscodeStub, textDocument, Selection, Position, Uri } from './vscodeStub';
import { EXTENSION_ROOT, REPO_ROOT } from './paths';

const CHAT = 'llama3.2:latest';
const CODER = 'qwen2.5-coder:1.5b';
const CHAT_TEXT = 'The sky is blue because of Rayleigh scattering.';

function python(): { python: string; problem?: string } {
  const py = process.env['AETHEL_PYTHON'] || path.join(REPO_ROOT, '.venv', 'bin', 'python');
  const probe = spawnSync(py, ['-c', 'import aethel_lsp.lsp.server, tests.fakes.ollama'], { cwd: REPO_ROOT, timeout: 30000 });
  if (probe.status !== 0) return { python: py, problem: `${py} cannot import aethel_lsp.lsp.server and tests.fakes.ollama; create the repo's .venv or set AETHEL_PYTHON` };
  return { python: py };
}

const py = python();
if (py.problem !== undefined && process.env['AETHEL_WIRE_REQUIRED'] === '1') throw new Error(py.problem);

async function waitFor(what: string, predicate: () => boolean, ms = 20000): Promise<void> {
  const until = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function startFake(env: NodeJS.ProcessEnv): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(py.python, ['-m', 'tests.fakes.ollama', '--port', '0', '--token-delay', '0.08'], { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`fake Ollama did not start: ${out}`)), 20000);
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });
  return { proc, url };
}

interface UpdateMessage {
  type: string;
  html: string;
  footer: string;
  streaming: boolean;
}

test('activate: server found, status bar, commands, explanation streamed into the panel', { skip: py.problem, timeout: 90000 }, async () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'aethel-vscode-ext-'));
  // The server inherits this process's environment (as it inherits VS Code's): isolate it.
  for (const k of Object.keys(process.env)) if (k === 'OLLAMA_HOST' || k.startsWith('AETHEL_LSP')) delete process.env[k];
  for (const [name, dir] of Object.entries({ HOME: 'home', XDG_CONFIG_HOME: 'config', XDG_STATE_HOME: 'state', XDG_CACHE_HOME: 'cache' })) {
    fs.mkdirSync(path.join(base, dir), { recursive: true });
    process.env[name] = path.join(base, dir);
  }
  process.env['AETHEL_LSP_STATE_DIR'] = path.join(base, 'state', 'aethel-lsp');
  process.env['PYTHONPATH'] = REPO_ROOT;
  const fake = await startFake(process.env);

  const { vscode, state } = createVscodeStub();
  state.settings = {
    // A command line, as a user would type it: tests the splitting and the explicit-command path.
    'aethel.server.command': `"${py.python}" -m aethel_lsp`,
    'aethel.host': fake.url,
    'aethel.model': CHAT,
  };
  const load = (Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown })._load;
  (Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown })._load = (request: string, ...rest: unknown[]) =>
    request === 'vscode' ? vscode : load(request, ...rest);

  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ext = require('../src/extension') as { activate(ctx: unknown): Promise<void>; deactivate(): Promise<void> };
  const packageJSON: unknown = JSON.parse(fs.readFileSync(path.join(EXTENSION_ROOT, 'package.json'), 'utf8'));
  const context = {
    subscriptions: [] as { dispose(): unknown }[],
    extensionUri: Uri.file(EXTENSION_ROOT),
    extension: { packageJSON },
    asAbsolutePath: (p: string) => path.join(EXTENSION_ROOT, p),
  };

  try {
    await ext.activate(context);
    const status = state.statusItems[0];
    assert.ok(status, 'a status bar item');
    assert.equal(status.command, 'aethel-vscode.statusMenu');
    await waitFor('the status bar to show the model from aethel/status', () => status.text.startsWith(`$(sparkle) ${CHAT}`));
    assert.ok(state.log.some((l) => l.includes('Starting the language server') && l.includes('-m aethel_lsp')), state.log.join('\n'));

    // Every server command is in the palette under its forwarding id, and the client
    // registered the server's own ids without a clash.
    for (const id of ['explainSelection', 'generateContract', 'improveSelection', 'documentSelection', 'fixWithAI', 'modelStatus', 'throughput', 'listModels', 'selectModel', 'pullModel', 'doctor', 'inspectLast', 'recommendModels']) {
      assert.ok(state.commands.has(`aethel-vscode.${id}`), `aethel-vscode.${id}`);
    }
    assert.ok(state.commands.has('aethel.explainSelection'), 'the client registered the server command itself');

    // The user selects two lines and runs "Aethel: Explain selection".
    const file = path.join(base, 'calc.py');
    const doc = textDocument(file, 'python', 'def add(a, b):\n    return a + b\n');
    state.textDocuments.push(doc);
    state.didOpen.fire(doc);
    state.activeTextEditor = { document: doc, selection: new Selection(new Position(0, 0), new Position(1, 16)) };
    await state.commands.get('aethel-vscode.explainSelection')?.();

    const panel = state.panels.find((p) => p.title.startsWith('Explanation: calc.py:1-2'));
    assert.ok(panel, `a panel opened: ${state.panels.map((p) => p.title).join(', ')}`);
    assert.match(panel.html, /Content-Security-Policy/);
    const updates = panel.messages as UpdateMessage[];
    const final = updates.at(-1);
    assert.equal(final?.streaming, false);
    assert.equal(final?.html, `<p>${CHAT_TEXT}</p>`);
    assert.match(final?.footer ?? '', /tokens · [\d.]+ s · 50\.0 tok\/s/);
    const live = updates.filter((u) => u.streaming && u.html.startsWith('<p>') && u.html.length < final.html.length);
    assert.ok(live.length >= 1, `the panel showed partial text while streaming (${updates.length} updates)`);
    // The server's Markdown copy was not opened on top of the panel.
    assert.deepEqual(state.shownDocuments, []);
    await waitFor('tok/s in the status bar', () => status.text === `$(sparkle) ${CHAT} · 50.0 tok/s`);

    // Stop: the panel's button cancels the generation; what arrived stays, marked as stopped.
    // The second explanation reuses the same tab (issue 16), under the same title.
    const before = panel.messages.length;
    const running = state.commands.get('aethel-vscode.explainSelection')?.();
    await waitFor('the panel streaming again', () => (panel.messages.slice(before) as UpdateMessage[]).some((u) => u.streaming && u.html.startsWith('<p>')));
    assert.equal(state.panels.length, 1, 'no second tab');
    const second = panel;
    assert.equal((second.messages.at(-1) as UpdateMessage & { title?: string }).title, 'Explanation: calc.py:1-2');
    second.receive.fire({ type: 'stop' });
    await running;
    await waitFor('the stopped panel to render', () => (second.messages.at(-1) as UpdateMessage).streaming === false);
    const stoppedUpdate = second.messages.at(-1) as UpdateMessage;
    assert.equal(stoppedUpdate.footer, 'Stopped.');
    assert.match(stoppedUpdate.html, /\(stopped\)/);
    assert.ok(stoppedUpdate.html.length < `<p>${CHAT_TEXT}\n\n_(stopped)_</p>`.length, 'the generation did not run to the end');

    // "Show throughput" renders the server's numbers in a panel: 2 requests, 0 errors, 1 cancelled.
    await state.commands.get('aethel-vscode.throughput')?.();
    const tp = state.panels.find((p) => p.title === 'Aethel: Show throughput');
    await waitFor('the throughput panel to render', () => (tp?.messages.length ?? 0) > 0);
    assert.match((tp?.messages.at(-1) as UpdateMessage | undefined)?.html ?? '', new RegExp(`\\| \`${CHAT.replace('.', '\\.')}\` \\| 2 \\| 0 \\| 1 \\|`));

    // "Doctor": the server opens its own Markdown report; no second panel.
    const panelsBefore = state.panels.length;
    const t0 = Date.now();
    await state.commands.get('aethel-vscode.doctor')?.();
    assert.equal(state.panels.length, panelsBefore);
    assert.ok(state.shownDocuments.some((d: string) => /\.md$/.test(d)), `the doctor report was opened: ${state.shownDocuments.join(', ')}`);
    assert.ok(Date.now() - t0 < 30000);

    // A click on the status bar: the installed models, the active one first; pick the coder.
    await Promise.all([
      state.commands.get('aethel-vscode.statusMenu')?.(),
      (async () => {
        await waitFor('the model picker to fill', () => (state.quickPicks[0]?.items.length ?? 0) > 0 && !state.quickPicks[0]?.busy);
        const qp = state.quickPicks[0];
        assert.ok(qp);
        assert.equal(qp.items[0]?.label, `$(check) ${CHAT}`);
        const coder = qp.items.find((i) => i.label.endsWith(CODER));
        assert.ok(coder, qp.items.map((i) => i.label).join(', '));
        assert.match(coder.description ?? '', /1\.5B/);
        assert.ok(qp.items.some((i) => i.label === '$(cloud-download) Pull a model…'));
        qp.accept(coder);
      })(),
    ]);
    await waitFor('the status bar to show the picked model', () => status.text.startsWith(`$(sparkle) ${CODER}`));

    // "Pull a model…": a notification fed by the server's pull progress.
    state.inputBox = 'deepseek-coder:6.7b';
    await state.commands.get('aethel-vscode.pullModel')?.();
    const pull = state.progress.find((p) => p.title === 'Pulling deepseek-coder:6.7b');
    assert.ok(pull, state.progress.map((p) => p.title).join(', '));
    assert.equal(pull.location, 15, 'a notification');
    const total = pull.reports.reduce((sum, r) => sum + (r.increment ?? 0), 0);
    assert.ok(total > 0 && total <= 100, `percent increments add up (${total})`);
    assert.ok(pull.reports.some((r) => typeof r.message === 'string' && r.message !== ''), 'pull status lines are shown');
    await waitFor('the "ready" message', () => state.messages.some((m) => m.text === 'Aethel: deepseek-coder:6.7b is ready.'));

    // No error was shown to the user along the way.
    assert.deepEqual(state.messages.filter((m) => m.kind === 'error'), []);
  } finally {
    await ext.deactivate();
    fake.proc.kill();
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('server not found: a clear notification with "How to install"', { timeout: 30000 }, async () => {
  const { vscode, state } = createVscodeStub();
  state.settings = { 'aethel.server.command': '/nonexistent/aethel-lsp' };
  const load = (Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown })._load;
  (Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown })._load = (request: string, ...rest: unknown[]) =>
    request === 'vscode' ? vscode : load(request, ...rest);
  // A fresh copy of the module (the first test loaded it with another stub).
  for (const key of Object.keys(require.cache)) if (key.includes(`${path.sep}out${path.sep}src${path.sep}`)) delete require.cache[key];
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ext = require('../src/extension') as { activate(ctx: unknown): Promise<void>; deactivate(): Promise<void> };
  const context = { subscriptions: [], extensionUri: Uri.file(EXTENSION_ROOT), extension: { packageJSON: {} }, asAbsolutePath: (p: string) => p };
  state.answer = (_text, items) => (items.includes('How to install') ? 'How to install' : undefined);
  await ext.activate(context);
  await waitFor('the error notification', () => state.messages.some((m) => m.kind === 'error'));
  const msg = state.messages.find((m) => m.kind === 'error');
  // It names the configured command and where it is set (issue 16).
  assert.match(msg?.text ?? '', /language server command `\/nonexistent\/aethel-lsp` was not found \("aethel\.server\.command" in User settings\)/);
  assert.deepEqual(msg?.items, ['How to install', 'Open Settings', 'Show Log']);
  await waitFor('the README to open', () => state.executed.some((e) => e.command === 'markdown.showPreview'));
  // A file that exists (a packed .vsix has `readme.md`, the source folder `README.md`).
  const preview = state.executed.find((e) => e.command === 'markdown.showPreview');
  assert.ok(fs.existsSync((preview?.args[0] as Uri).fsPath), String((preview?.args[0] as Uri)?.fsPath));
  assert.equal(state.statusItems[0]?.text, '$(circle-slash) Aethel: stopped');
  // A palette command now says what is wrong instead of failing silently.
  await state.commands.get('aethel-vscode.modelStatus')?.();
  assert.ok(state.messages.some((m) => m.kind === 'error' && /not running/.test(m.text)));
  await ext.deactivate();
});
