/**
 * Wire-level test: the REAL aethel-lsp server (`python -m aethel_lsp`, the extension's
 * fallback command) over stdio, against the project's fake Ollama (a subprocess on a free
 * port), driven with vscode-languageserver-protocol — the library vscode-languageclient
 * itself uses — sending what VS Code sends, and feeding the server's progress and status
 * through the extension's own pure modules (ProgressRouter, renderStatus, ...).
 *
 * Needs the Python side: the repo's `.venv` (or $AETHEL_PYTHON) with aethel_lsp installed.
 * Without it the test is skipped with the reason, unless AETHEL_WIRE_REQUIRED=1 (CI).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  ApplyWorkspaceEditRequest,
  CancellationTokenSource,
  ConfigurationRequest,
  createProtocolConnection,
  DidChangeConfigurationNotification,
  DidOpenTextDocumentNotification,
  ExecuteCommandRequest,
  InitializeRequest,
  InlineCompletionRequest,
  InlineCompletionTriggerKind,
  RegistrationRequest,
  ShowDocumentRequest,
  StreamMessageReader,
  StreamMessageWriter,
  WorkDoneProgressCreateRequest,
  type ApplyWorkspaceEditParams,
  type ConfigurationParams,
  type InitializeParams,
  type InlineCompletionItem,
  type InlineCompletionList,
  type ProtocolConnection,
  type ShowDocumentParams,
  type WorkDoneProgressBegin,
  type WorkDoneProgressEnd,
  type WorkDoneProgressReport,
} from 'vscode-languageserver-protocol/node';
import { executeCommandParams, generateArgs, pullModelArgs, selectionArgs, selectModelArgs } from '../src/commandArgs';
import * as proto from '../src/protocol';
import { answerConfigurationItem, explicitServerSettings } from '../src/settingsFilter';
import { modelPickItems, renderStatus } from '../src/status';
import { isExplanationDocument, ProgressRouter, type ProgressValue } from '../src/streaming';
import { REPO_ROOT } from './paths';

const CODER = 'qwen2.5-coder:1.5b';
const CHAT = 'llama3.2:latest';
const CHAT_TEXT = 'The sky is blue because of Rayleigh scattering.'; // the fake's default reply for CHAT

function pythonFor(): { python: string; problem?: string } {
  const candidates = [process.env['AETHEL_PYTHON'], path.join(REPO_ROOT, '.venv', 'bin', 'python'), 'python3'].filter(
    (p): p is string => typeof p === 'string' && p !== '',
  );
  const python = candidates.find((p) => !p.includes('/') || fs.existsSync(p)) ?? 'python3';
  const probe = spawnSync(python, ['-c', 'import aethel_lsp.lsp.server, tests.fakes.ollama'], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 30000 });
  if (probe.status !== 0) {
    const why = (probe.stderr ?? '').trim().split('\n').pop() || (probe.error ? String(probe.error) : `exit status ${probe.status}`);
    return { python, problem: `${python} cannot import aethel_lsp.lsp.server and tests.fakes.ollama (${why}); create the repo's .venv or set AETHEL_PYTHON` };
  }
  return { python };
}

const { python, problem } = pythonFor();
if (problem !== undefined && process.env['AETHEL_WIRE_REQUIRED'] === '1') throw new Error(problem);

/** An environment whose HOME/XDG/state dirs are private (no real user config is read). */
function isolatedEnv(base: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'OLLAMA_HOST' || k.startsWith('AETHEL_') || k.startsWith('OPENAI')) continue;
    env[k] = v;
  }
  for (const [name, dir] of Object.entries({ HOME: 'home', XDG_CONFIG_HOME: 'config', XDG_STATE_HOME: 'state', XDG_CACHE_HOME: 'cache', XDG_DATA_HOME: 'data' })) {
    const full = path.join(base, dir);
    fs.mkdirSync(full, { recursive: true });
    env[name] = full;
  }
  env['AETHEL_LSP_STATE_DIR'] = path.join(base, 'state', 'aethel-lsp');
  env['PYTHONPATH'] = REPO_ROOT; // tests.fakes for the fake
  return env;
}

async function startFake(env: NodeJS.ProcessEnv): Promise<{ proc: ChildProcess; url: string }> {
  const proc = spawn(python, ['-m', 'tests.fakes.ollama', '--port', '0', '--token-delay', '0.03', '--pull-delay', '0.05'], {
    cwd: REPO_ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`fake Ollama did not start: ${out} ${err}`)), 20000);
    proc.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    proc.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`fake Ollama exited with ${code}: ${err}`)));
  });
  return { proc, url };
}

/** What VS Code (vscode-languageclient 11) declares, trimmed to what the server looks at. */
function vscodeInitializeParams(root: string, initializationOptions: unknown): InitializeParams {
  const rootUri = pathToFileURL(root).href;
  return {
    processId: process.pid,
    clientInfo: { name: 'Visual Studio Code', version: '1.106.0' },
    locale: 'en',
    rootPath: root,
    rootUri,
    workspaceFolders: [{ uri: rootUri, name: path.basename(root) }],
    initializationOptions,
    capabilities: {
      general: { positionEncodings: ['utf-16'], markdown: { parser: 'marked', version: '1.1.0' }, staleRequestSupport: { cancel: true, retryOnContentModified: [] } },
      window: { workDoneProgress: true, showDocument: { support: true }, showMessage: { messageActionItem: { additionalPropertiesSupport: true } } },
      workspace: {
        applyEdit: true,
        workspaceEdit: { documentChanges: true, resourceOperations: ['create', 'rename', 'delete'], failureHandling: 'textOnlyTransactional', normalizesLineEndings: true },
        didChangeConfiguration: { dynamicRegistration: true },
        didChangeWatchedFiles: { dynamicRegistration: true, relativePatternSupport: true },
        executeCommand: { dynamicRegistration: true },
        configuration: true,
        workspaceFolders: true,
      },
      textDocument: {
        synchronization: { dynamicRegistration: true, willSave: true, willSaveWaitUntil: true, didSave: true },
        completion: {
          dynamicRegistration: true,
          contextSupport: true,
          completionItem: { snippetSupport: true, documentationFormat: ['markdown', 'plaintext'], resolveSupport: { properties: ['documentation', 'detail', 'additionalTextEdits'] }, insertReplaceSupport: true },
        },
        codeAction: {
          dynamicRegistration: true,
          isPreferredSupport: true,
          disabledSupport: true,
          dataSupport: true,
          resolveSupport: { properties: ['edit', 'command'] },
          codeActionLiteralSupport: { codeActionKind: { valueSet: ['', 'quickfix', 'refactor', 'refactor.extract', 'refactor.inline', 'refactor.rewrite', 'source', 'source.organizeImports'] } },
          honorsChangeAnnotations: true,
        },
        inlineCompletion: { dynamicRegistration: true },
        publishDiagnostics: { relatedInformation: true, versionSupport: false, tagSupport: { valueSet: [1, 2] }, codeDescriptionSupport: true, dataSupport: true },
      },
    },
  };
}

interface Recorded {
  progress: { token: string | number; value: WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd }[];
  statuses: proto.StatusParams[];
  edits: ApplyWorkspaceEditParams[];
  shown: ShowDocumentParams[];
  configurationRequests: ConfigurationParams[];
}

async function waitFor(what: string, predicate: () => boolean, ms = 15000): Promise<void> {
  const until = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('VS Code-shaped session against the real server and the fake Ollama', { skip: problem, timeout: 90000 }, async () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'aethel-vscode-wire-'));
  const workspace = path.join(base, 'ws');
  fs.mkdirSync(workspace);
  const env = isolatedEnv(base);
  const fake = await startFake(env);
  const server = spawn(python, ['-m', 'aethel_lsp'], { cwd: workspace, env, stdio: ['pipe', 'pipe', 'pipe'] });
  let serverStderr = '';
  server.stderr.on('data', (d: Buffer) => (serverStderr += d.toString()));
  const conn: ProtocolConnection = createProtocolConnection(new StreamMessageReader(server.stdout), new StreamMessageWriter(server.stdin));
  const rec: Recorded = { progress: [], statuses: [], edits: [], shown: [], configurationRequests: [] };

  // The user's explicit VS Code settings, filtered exactly as the extension does it (defaults
  // are never sent; `server.*` is the extension's own).
  const userSettings: Record<string, { globalValue?: unknown }> = {
    host: { globalValue: fake.url },
    model: { globalValue: CHAT },
    'completion.model': { globalValue: CODER },
    'server.command': { globalValue: '/somewhere/aethel-lsp' },
    temperature: {},
  };
  let settings = explicitServerSettings(Object.keys(userSettings), (k) => userSettings[k]);
  assert.deepEqual(settings, { host: fake.url, model: CHAT, completion: { model: CODER } });

  conn.onRequest(ConfigurationRequest.type, (params) => {
    rec.configurationRequests.push(params);
    return params.items.map((item) => answerConfigurationItem(item.section, settings) ?? null);
  });
  conn.onRequest(WorkDoneProgressCreateRequest.type, () => undefined);
  conn.onRequest(RegistrationRequest.type, () => undefined);
  conn.onRequest(ApplyWorkspaceEditRequest.type, (params) => {
    rec.edits.push(params);
    return { applied: true };
  });
  conn.onRequest(ShowDocumentRequest.type, (params) => {
    rec.shown.push(params);
    return { success: true };
  });
  const router = new ProgressRouter<string>(new Set(['explain', 'pull', 'generate', 'improve', 'document', 'fix']));
  const routed: { token: string; ticket: string | undefined; text: string; kind: string }[] = [];
  conn.onNotification('$/progress', (p: { token: string | number; value: ProgressValue }) => {
    rec.progress.push({ token: p.token, value: p.value });
    const r = router.handle(p.token, p.value);
    if (r !== undefined) routed.push({ token: r.token, ticket: r.ticket, text: r.stream.text, kind: r.value.kind });
  });
  conn.onNotification(proto.NOTIFY_STATUS, (p: proto.StatusParams) => {
    rec.statuses.push(p);
  });
  conn.onNotification('window/logMessage', () => undefined);
  conn.onNotification('window/showMessage', () => undefined);
  conn.onNotification('textDocument/publishDiagnostics', () => undefined);
  conn.listen();

  try {
    // -- initialize: what the extension relies on --------------------------------------------
    const init = await conn.sendRequest(InitializeRequest.type, vscodeInitializeParams(workspace, settings));
    const caps = init.capabilities;
    assert.ok(caps.inlineCompletionProvider, 'inline completion is advertised (vscode-languageclient >= 10 wires it)');
    assert.ok(caps.codeActionProvider, 'code actions are advertised');
    const serverCommands = caps.executeCommandProvider?.commands ?? [];
    for (const id of serverCommands) {
      assert.ok((proto.ALL_SERVER_COMMANDS as readonly string[]).includes(id), `the palette has an entry for the server's ${id}`);
      assert.ok(!id.startsWith(proto.CLIENT_COMMAND_PREFIX), 'no server id collides with a forwarding id');
    }
    for (const id of [proto.CMD_EXPLAIN_SELECTION, proto.CMD_GENERATE_CONTRACT, proto.CMD_IMPROVE_SELECTION, proto.CMD_DOCUMENT_SELECTION, proto.CMD_FIX_WITH_AI, proto.CMD_MODEL_STATUS, proto.CMD_THROUGHPUT, proto.CMD_LIST_MODELS, proto.CMD_SELECT_MODEL, proto.CMD_PULL_MODEL]) {
      assert.ok(serverCommands.includes(id), `server lists ${id}`);
    }
    await conn.sendNotification('initialized', {});
    await waitFor('the server to pull the `aethel` settings', () => rec.configurationRequests.some((r) => r.items.some((i) => i.section === proto.CONFIG_SECTION)));
    await waitFor('a ready status naming the configured model', () => rec.statuses.some((s) => s.state === 'ready' && s.model === CHAT));
    assert.equal(renderStatus(rec.statuses.at(-1) as proto.StatusParams).text.startsWith(`$(sparkle) ${CHAT}`), true);

    // -- explain: streamed deltas == result text, routed to the waiting panel ---------------
    const uri = pathToFileURL(path.join(workspace, 'calc.py')).href;
    const source = 'def add(a, b):\n    return a + b\n\n\nprint(add(1, 2))\n';
    await conn.sendNotification(DidOpenTextDocumentNotification.type, { textDocument: { uri, languageId: 'python', version: 1, text: source } });
    const unwait = router.wait('explain', 'panel-1');
    const range = { start: { line: 0, character: 0 }, end: { line: 2, character: 0 } };
    const explained = (await conn.sendRequest(ExecuteCommandRequest.type, executeCommandParams(proto.CMD_EXPLAIN_SELECTION, selectionArgs(uri, range)))) as proto.TextResult;
    unwait();
    assert.equal(explained.text, CHAT_TEXT);
    const mine = routed.filter((r) => r.ticket === 'panel-1');
    assert.ok(mine.length >= 3, `begin, at least one report and end reached the panel (${mine.length})`);
    assert.equal(mine[0]?.kind, 'begin');
    assert.equal(mine.at(-1)?.kind, 'end');
    assert.equal(mine.at(-1)?.text, explained.text, 'the concatenated report deltas are the result text');
    assert.ok(mine.some((r) => r.kind === 'report' && r.text !== '' && r.text.length < explained.text.length), 'the text arrived in pieces (live), not only at the end');
    const token = mine[0]?.token;
    const begin = rec.progress.find((p) => String(p.token) === token && p.value.kind === 'begin')?.value as WorkDoneProgressBegin;
    assert.equal(begin.title, 'Explaining selection');
    assert.equal(begin.cancellable, true);
    const endMsg = (rec.progress.find((p) => String(p.token) === token && p.value.kind === 'end')?.value as WorkDoneProgressEnd).message ?? '';
    assert.match(endMsg, /^\d+ tokens · [\d.]+ s · [\d.]+ tok\/s$/);
    assert.equal(explained.metrics?.tokensPerSecond, 50, 'the fake reports 20 ms per token');
    // the server shows a Markdown file: the extension recognises it and keeps its own panel
    assert.equal(rec.shown.length, 1);
    assert.ok(isExplanationDocument(rec.shown[0]?.uri ?? ''), rec.shown[0]?.uri);
    await waitFor('a status with tok/s after the generation', () => rec.statuses.some((s) => s.state === 'ready' && s.tokensPerSecond === 50));
    assert.equal(renderStatus(rec.statuses.at(-1) as proto.StatusParams).text, `$(sparkle) ${CHAT} · 50.0 tok/s`);
    assert.ok(rec.statuses.some((s) => s.state === 'busy'), 'busy while generating');

    // -- cancel an explanation with $/cancelRequest (what the panel's Stop does) ---------------
    const cts = new CancellationTokenSource();
    const before = rec.progress.length;
    const pending = conn.sendRequest(ExecuteCommandRequest.type, executeCommandParams(proto.CMD_EXPLAIN_SELECTION, selectionArgs(uri, range)), cts.token);
    await waitFor('the first report of the second explanation', () => rec.progress.slice(before).some((p) => p.value.kind === 'report'));
    cts.cancel();
    await assert.rejects(pending, (e: { code?: number }) => e.code === -32800);
    await waitFor('the cancelled progress to end', () => rec.progress.slice(before).some((p) => p.value.kind === 'end'));
    assert.match((rec.progress.slice(before).find((p) => p.value.kind === 'end')?.value as WorkDoneProgressEnd).message ?? '', /cancel/i);

    // -- improve: the edit comes back through workspace/applyEdit ----------------------------
    const improved = (await conn.sendRequest(
      ExecuteCommandRequest.type,
      executeCommandParams(proto.CMD_IMPROVE_SELECTION, selectionArgs(uri, { start: { line: 0, character: 0 }, end: { line: 2, character: 0 } })),
    )) as proto.TextResult;
    assert.equal(improved.applied, true);
    assert.equal(rec.edits.length, 1);
    assert.match(JSON.stringify(rec.edits[0]?.edit), new RegExp(CHAT_TEXT.slice(0, 20)));

    // -- generate: from a comment line in an .ae file ----------------------------------------
    const ae = pathToFileURL(path.join(workspace, 'fee.ae')).href;
    await conn.sendNotification(DidOpenTextDocumentNotification.type, {
      textDocument: { uri: ae, languageId: 'aethel', version: 1, text: '# transfer with a 1% fee to the treasury\n' },
    });
    const generated = (await conn.sendRequest(
      ExecuteCommandRequest.type,
      executeCommandParams(proto.CMD_GENERATE_CONTRACT, generateArgs(ae, { start: { line: 0, character: 3 }, end: { line: 0, character: 3 } })),
    )) as proto.TextResult;
    assert.equal(typeof generated.valid, 'boolean');
    assert.ok((generated.attempts ?? 0) >= 1);

    // -- inline completion, as VS Code asks while typing -------------------------------------
    const ic: InlineCompletionList | InlineCompletionItem[] | null = await conn.sendRequest(InlineCompletionRequest.type, {
      textDocument: { uri },
      position: { line: 4, character: 0 },
      context: { triggerKind: InlineCompletionTriggerKind.Invoked },
    });
    const items = Array.isArray(ic) ? ic : (ic?.items ?? []);
    assert.ok(items.length > 0, 'inline completion items');
    assert.equal(typeof items[0]?.insertText === 'string' ? items[0].insertText.length > 0 : true, true);

    // -- status bar quick pick: listModels -> selectModel -----------------------------------
    const models = (await conn.sendRequest(ExecuteCommandRequest.type, executeCommandParams(proto.CMD_LIST_MODELS))) as proto.ModelInfo[];
    const picks = modelPickItems(models, CHAT);
    assert.equal(picks[0]?.model, CHAT);
    assert.ok(picks.some((p) => p.model === CODER && p.description.includes('1.5B')), JSON.stringify(picks));
    // The fake has nomic-embed-text (embedding only): listed by the server, not offered to pick.
    assert.ok(models.some((m) => (m.capabilities ?? []).join() === 'embedding'), JSON.stringify(models));
    assert.ok(!picks.some((p) => p.model.startsWith('nomic-embed-text')), JSON.stringify(picks));
    const selected = (await conn.sendRequest(ExecuteCommandRequest.type, executeCommandParams(proto.CMD_SELECT_MODEL, selectModelArgs(CODER)))) as { activeModel: string; task: string };
    assert.deepEqual(selected, { activeModel: CODER, task: 'chat' });
    await waitFor('the status bar to show the selected model', () => rec.statuses.at(-1)?.model === CODER);
    await assert.rejects(
      conn.sendRequest(ExecuteCommandRequest.type, executeCommandParams(proto.CMD_SELECT_MODEL, selectModelArgs('no-such-model:1b'))),
      (e: { message?: string }) => /no-such-model/.test(e.message ?? ''),
    );

    // -- "Pull a model…": percentages for the notification, then cancel ----------------------
    const pullTicket = 'pull-notification';
    const unwaitPull = router.wait('pull', pullTicket);
    const pulled = (await conn.sendRequest(ExecuteCommandRequest.type, executeCommandParams(proto.CMD_PULL_MODEL, pullModelArgs('deepseek-coder:6.7b')))) as { model: string; status: string };
    unwaitPull();
    assert.deepEqual(pulled, { model: 'deepseek-coder:6.7b', status: 'success' });
    const pullEvents = routed.filter((r) => r.ticket === pullTicket);
    assert.equal(pullEvents[0]?.kind, 'begin');
    assert.equal(pullEvents.at(-1)?.kind, 'end');
    const percentages = rec.progress
      .filter((p) => String(p.token) === pullEvents[0]?.token && p.value.kind === 'report')
      .map((p) => (p.value as WorkDoneProgressReport).percentage)
      .filter((x): x is number => typeof x === 'number');
    assert.ok(percentages.length > 0, 'pull reports percentages');

    const pullCts = new CancellationTokenSource();
    const beforePull = rec.progress.length;
    const pulling = conn.sendRequest(ExecuteCommandRequest.type, executeCommandParams(proto.CMD_PULL_MODEL, pullModelArgs('starcoder2:3b')), pullCts.token);
    await waitFor('the pull to begin', () => rec.progress.slice(beforePull).some((p) => p.value.kind === 'begin'));
    pullCts.cancel();
    await assert.rejects(pulling, (e: { code?: number }) => e.code === -32800);

    // -- a settings change: settings: null makes the server pull again -------------------------
    const pulls = rec.configurationRequests.length;
    settings = { ...settings, model: CODER };
    await conn.sendNotification(DidChangeConfigurationNotification.type, { settings: null });
    await waitFor('the server to re-read the settings', () => rec.configurationRequests.length > pulls);

    // -- the server keeps serving after the cancellations -------------------------------------
    const status = (await conn.sendRequest(ExecuteCommandRequest.type, executeCommandParams(proto.CMD_MODEL_STATUS))) as { available: boolean; host: string };
    assert.equal(status.available, true);
    assert.equal(status.host, fake.url);
    const tp = (await conn.sendRequest(ExecuteCommandRequest.type, executeCommandParams(proto.CMD_THROUGHPUT))) as { models: Record<string, { requests: number }> };
    assert.ok((tp.models[CHAT]?.requests ?? 0) >= 2, JSON.stringify(tp));

    await conn.sendRequest('shutdown');
    await conn.sendNotification('exit');
    await new Promise<void>((resolve) => (server.exitCode !== null ? resolve() : server.on('exit', () => resolve())));
  } catch (err) {
    console.error(`--- server stderr ---\n${serverStderr.slice(-4000)}`);
    throw err;
  } finally {
    conn.dispose();
    if (server.exitCode === null) server.kill();
    fake.proc.kill();
    fs.rmSync(base, { recursive: true, force: true });
  }
});
