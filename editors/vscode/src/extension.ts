/**
 * VS Code glue for aethel-lsp. Everything that can be decided without VS Code lives in the
 * pure modules next to this file (and is unit-tested); this file only wires them to the
 * editor: starting the client, the status bar, the palette commands, the streaming panel.
 */

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import {
  ExecuteCommandRequest,
  LanguageClient,
  LSPErrorCodes,
  ResponseError,
  State,
  TransportKind,
  WorkDoneProgressCancelNotification,
  type LanguageClientOptions,
  type ServerOptions,
} from 'vscode-languageclient/node';

import {
  executeCommandParams,
  effectiveRange,
  fixArgs,
  fixRange,
  generateArgs,
  lspSeverity,
  needsDescription,
  pullModelArgs,
  selectionArgs,
  selectModelArgs,
  validateModelName,
  type ModelTask,
  type Range as LspRange,
} from './commandArgs';
import { panelHtml, makeNonce, isPanelRequest, type PanelUpdate } from './panelHtml';
import {
  ALL_SERVER_COMMANDS,
  CLIENT_ID,
  CLIENT_ONLY_COMMANDS,
  CMD_DISTILL_CONTRACT,
  CMD_DOCTOR,
  CMD_DOCUMENT_SELECTION,
  CMD_EXPLAIN_SELECTION,
  CMD_FIX_WITH_AI,
  CMD_GENERATE_CONTRACT,
  CMD_IMPROVE_SELECTION,
  CMD_INSPECT_LAST,
  CMD_LIST_MODELS,
  CMD_MODEL_STATUS,
  CMD_PULL_MODEL,
  CMD_RECOMMEND_MODELS,
  CMD_SELECT_MODEL,
  CMD_THROUGHPUT,
  COMMAND_TITLES,
  CONFIG_SECTION,
  LANGUAGE_ID,
  NOTIFY_STATUS,
  forwardingId,
  type Metrics,
  type ModelInfo,
  type ServerCommand,
  type StatusParams,
  type TextResult,
} from './protocol';
import {
  distillMarkdown,
  escapeHtml,
  genericResultMarkdown,
  isDistillResult,
  metricsLine,
  modelStatusMarkdown,
  throughputMarkdown,
} from './render';
import { findExecutable, launchCandidates, notFoundMessage, resolveLaunch, type LaunchResolution } from './serverLaunch';
import {
  answerConfigurationItem,
  explicitServerSettings,
  ignoredUserValue,
  isClientOnly,
  machineValue,
  settingsCommandFor,
  sourceLabel,
  type InspectedValue,
  type NestedSettings,
  type SourcedValue,
} from './settingsFilter';
import { MACHINE_SCOPED } from './settingsSchema';
import { modelPickItems, renderStatus, STARTING_VIEW, STOPPED_VIEW, type StatusView } from './status';
import { isExplanationDocument, percentIncrement, ProgressRouter, type RoutedProgress } from './streaming';

// ------------------------------------------------------------------------------ state

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
let statusItem: vscode.StatusBarItem;
let lastStatus: StatusParams | undefined;
let extensionContext: vscode.ExtensionContext;
let lastLaunchProblem: string | undefined;
/** The model the server picked itself for the last generation (`aethel.model` unset). */
let autoPickedModel: string | undefined;
const AI_COMPLETION_MARKER = 'aethel.aiCompletion';

/** Something that wants the progress of a server generation. */
type ProgressTicket = StreamPanel | NotificationTicket;

interface NotificationTicket {
  kind: 'notification';
  progress: vscode.Progress<{ message?: string; increment?: number }>;
  reported: number;
  showMessages: boolean;
  /** Set for a notification we opened for a progress nobody waited for: closes it. */
  finish?: () => void;
}

const router = new ProgressRouter<ProgressTicket>(new Set(['explain', 'pull', 'generate', 'improve', 'document', 'fix']));

// ------------------------------------------------------------------------------ activation

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  extensionContext = context;
  output = vscode.window.createOutputChannel('Aethel', { log: true });
  statusItem = vscode.window.createStatusBarItem('aethel.status', vscode.StatusBarAlignment.Right, 100);
  statusItem.name = 'Aethel';
  statusItem.command = CLIENT_ONLY_COMMANDS.statusMenu;
  showStatus(STARTING_VIEW);
  statusItem.show();
  context.subscriptions.push(output, statusItem);

  registerCommands(context);
  context.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (e.affectsConfiguration(`${CONFIG_SECTION}.server`) && !copyingToRemote) {
        const pick = await vscode.window.showInformationMessage(
          'Aethel: the server command changed. Restart the language server to use it?',
          'Restart',
        );
        if (pick === 'Restart') await restartServer();
      }
    }),
  );

  const ignored = ignoredMachineSettings();
  if (ignored.size > 0) void offerCopyToRemote(ignored);
  await startServer();
}

export async function deactivate(): Promise<void> {
  const c = client;
  client = undefined;
  if (c !== undefined) await c.stop();
}

// ------------------------------------------------------------------------------ server start

async function startServer(): Promise<void> {
  showStatus(STARTING_VIEW);
  const configured = machineSetting('server.command');
  const resolution = await findServer();
  if (resolution.chosen === undefined) {
    const command = typeof configured.value === 'string' ? configured.value : '';
    lastLaunchProblem = notFoundMessage(resolution.tried, { command, where: sourceLabel(configured.source) });
    output.error(lastLaunchProblem);
    showStatus({ ...STOPPED_VIEW, tooltip: lastLaunchProblem });
    void offerInstallHelp(lastLaunchProblem);
    return;
  }
  lastLaunchProblem = undefined;
  const { command, args, label } = resolution.chosen;
  output.info(`Starting the language server: ${label} (resolved to ${command})`);

  const serverOptions: ServerOptions = { command, args, transport: TransportKind.stdio, options: { env: process.env } };
  const c = new LanguageClient(CLIENT_ID, 'Aethel', serverOptions, clientOptions());
  client = c;
  extensionContext.subscriptions.push(
    c.onNotification(NOTIFY_STATUS, (p: StatusParams) => {
      // The server's own model changed (set, reset): what it picked before may not hold.
      if ((p.model ?? '') !== (lastStatus?.model ?? '')) autoPickedModel = undefined;
      lastStatus = p;
      showServerStatus();
    }),
    c.onDidChangeState((e) => {
      if (e.newState === State.Stopped) showStatus(STOPPED_VIEW);
      if (e.newState === State.Starting) showStatus(STARTING_VIEW);
    }),
  );
  try {
    await c.start(); // inline completion (LSP 3.18) is wired by vscode-languageclient >= 10 itself
    if (lastStatus === undefined) showStatus({ text: '$(sparkle) Aethel', tooltip: 'aethel-lsp is running.' });
  } catch (err) {
    const msg = `Aethel: the language server (${label}) failed to start: ${errorText(err)}`;
    lastLaunchProblem = msg;
    output.error(msg);
    showStatus({ ...STOPPED_VIEW, tooltip: msg });
    void offerInstallHelp(msg);
  }
}

function clientOptions(): LanguageClientOptions {
  return {
    // Aethel files, and every other file: the AI actions and completion work for any code.
    documentSelector: [{ language: LANGUAGE_ID }, { scheme: 'file' }, { scheme: 'untitled' }],
    synchronize: {
      configurationSection: CONFIG_SECTION,
      fileEvents: vscode.workspace.createFileSystemWatcher('**/{aethel.toml,pyproject.toml}'),
    },
    // No initializationOptions: the server keeps those for its whole life, so a setting
    // reset in the editor would never reach it. It pulls `workspace/configuration` once
    // initialized and again on every change, and `configuration` below answers.
    outputChannel: output,
    middleware: {
      workspace: {
        configuration: (params, token, next) => answerConfiguration(params.items, token, next),
        // The client would push the whole `aethel` section, defaults included, and the server
        // takes pushed settings as they are. Send `settings: null` instead: the server then
        // pulls, and `configuration` above answers with the explicitly set values only.
        didChangeConfiguration: (_sections, next) => next(undefined),
      },
      window: {
        showDocument: (params, token, next) => {
          // The streaming panel already shows the explanation the server is about to open.
          if (explanationJustShown(params.uri)) return { success: true };
          return next(params, token);
        },
      },
      // The lazy "AI completion" item has no text until it is resolved; with an empty
      // `insertText` VS Code falls back to the label, and the suggest preview showed the
      // words "AI completion" as ghost text while the item was focused.
      provideCompletionItem: async (document, position, context, token, next) => {
        const result = await next(document, position, context, token);
        const items = Array.isArray(result) ? result : (result?.items ?? []);
        for (const item of items) if (isAiCompletionItem(item) && !item.insertText) item.insertText = '';
        return result;
      },
      handleWorkDoneProgress: (token, params, next) => {
        const routed = router.handle(token, params);
        if (routed === undefined) return next(token, params);
        const handled = onRoutedProgress(routed);
        // Progress we render ourselves is kept out of VS Code's status-bar spinner, except `end`
        // (it lets the client release its bookkeeping for the token).
        if (!handled || params.kind === 'end') next(token, params);
      },
    },
  };
}

/** The server's lazy AI item (`data.kind` is its marker). */
function isAiCompletionItem(item: vscode.CompletionItem): boolean {
  const data = (item as { data?: unknown }).data;
  return typeof data === 'object' && data !== null && (data as { kind?: unknown }).kind === AI_COMPLETION_MARKER;
}

/** Only values the user set, so package.json defaults never override the server's own config files. */
function explicitSettings(scope: vscode.Uri | undefined): NestedSettings {
  const cfg = vscode.workspace.getConfiguration(CONFIG_SECTION, scope);
  const keys = settingKeys();
  return explicitServerSettings(
    keys,
    (key) => {
      const inspected = cfg.inspect(key) as InspectedValue | undefined;
      if (inspected === undefined) return undefined;
      // In an untrusted workspace, ignore the workspace's values altogether.
      if (!vscode.workspace.isTrusted) {
        const { globalValue, globalLocalValue, globalRemoteValue } = inspected;
        return { globalValue, globalLocalValue, globalRemoteValue };
      }
      return inspected;
    },
    remoteWindow(),
  );
}

/** A window whose extension host runs elsewhere: code-server, Remote-SSH, WSL, containers. */
function remoteWindow(): boolean {
  return vscode.env.remoteName !== undefined;
}

/** Machine-scoped keys: the extension's own and the server's. */
const MACHINE_KEYS = ['server.command', 'server.args', ...MACHINE_SCOPED];

let copyingToRemote = false;

/**
 * Machine settings set only in the User settings of a remote window. VS Code does not apply
 * them there (it shows them at window load, then drops them), so neither do we: we say so.
 */
function ignoredMachineSettings(): Map<string, unknown> {
  const out = new Map<string, unknown>();
  if (!remoteWindow()) return out;
  const cfg = vscode.workspace.getConfiguration(CONFIG_SECTION);
  for (const key of MACHINE_KEYS) {
    const value = ignoredUserValue(cfg.inspect(key), true);
    if (value !== undefined) out.set(key, value);
  }
  return out;
}

async function offerCopyToRemote(ignored: Map<string, unknown>): Promise<void> {
  const names = [...ignored.keys()].map((k) => `aethel.${k}`).join(', ');
  output.warn(`${names}: set in your User settings, which VS Code does not apply to machine settings in this remote window.`);
  const pick = await vscode.window.showWarningMessage(
    `Aethel: ${names} in your User settings ${ignored.size > 1 ? 'are' : 'is'} not applied in this remote window ` +
      '(VS Code takes machine settings from the Remote settings).',
    'Copy to Remote settings',
    'Open Remote Settings',
  );
  if (pick === 'Open Remote Settings') {
    await vscode.commands.executeCommand(settingsCommandFor(true), { query: '@ext:aethel-lsp.aethel-lsp' });
    return;
  }
  if (pick !== 'Copy to Remote settings') return;
  output.info(`Copying ${names} to the Remote settings and restarting the language server.`);
  // Written while the server is stopped: a running client would push the change and race
  // its own stop ("Sending notification workspace/didChangeConfiguration failed").
  await restartServer(async () => {
    const cfg = vscode.workspace.getConfiguration(CONFIG_SECTION);
    copyingToRemote = true;
    try {
      // A machine setting written to Global in a remote window lands in the Remote settings.
      for (const [key, value] of ignored) await cfg.update(key, value, vscode.ConfigurationTarget.Global);
    } finally {
      copyingToRemote = false;
    }
  });
}

/** A machine-scoped setting of the extension, with the Settings tab it came from. */
function machineSetting(key: string): SourcedValue {
  const inspected = vscode.workspace.getConfiguration(CONFIG_SECTION).inspect(key) as InspectedValue | undefined;
  return machineValue(inspected, remoteWindow());
}

function settingKeys(): string[] {
  const pkg = extensionContext.extension.packageJSON as {
    contributes?: { configuration?: { properties?: Record<string, unknown> } };
  };
  const props = pkg.contributes?.configuration?.properties ?? {};
  return Object.keys(props)
    .filter((k) => k.startsWith(`${CONFIG_SECTION}.`))
    .map((k) => k.slice(CONFIG_SECTION.length + 1))
    .filter((k) => !isClientOnly(k));
}

async function answerConfiguration(
  items: { section?: string; scopeUri?: string }[],
  token: vscode.CancellationToken,
  next: (params: { items: { section?: string; scopeUri?: string }[] }, token: vscode.CancellationToken) => unknown,
): Promise<unknown[]> {
  const defaults = (await Promise.resolve(next({ items }, token))) as unknown[] | ResponseError<void>;
  const fallback = Array.isArray(defaults) ? defaults : items.map(() => null);
  return items.map((item, i) => {
    const scope = item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined;
    const ours = answerConfigurationItem(item.section, explicitSettings(scope));
    return ours === undefined ? fallback[i] : ours;
  });
}

async function findServer(): Promise<LaunchResolution> {
  const command = machineSetting('server.command').value;
  const args = machineSetting('server.args').value;
  const inputs = {
    configuredCommand: typeof command === 'string' ? command : 'aethel-lsp',
    extraArgs: Array.isArray(args) ? args.filter((a): a is string => typeof a === 'string') : [],
    platform: process.platform,
    home: os.homedir(),
    workspaceFolder: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath,
  };
  const probes = {
    find: (cmd: string) => findExecutable(cmd, process.env, process.platform, isExecutableFile),
    canImport: (python: string) => canImportServer(python),
  };
  // Only wake the Python extension when the command itself is not found.
  const [first] = launchCandidates(inputs);
  if (first !== undefined && probes.find(first.command) !== undefined) return resolveLaunch([first], probes);
  return resolveLaunch(launchCandidates({ ...inputs, pythonExtensionInterpreter: await pythonExtensionInterpreter() }), probes);
}

function isExecutableFile(p: string): boolean {
  try {
    const st = fs.statSync(p);
    if (!st.isFile()) return false;
    if (process.platform === 'win32') return true;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function canImportServer(python: string): Promise<boolean> {
  return new Promise((resolve) => {
    execFile(python, ['-c', 'import aethel_lsp'], { timeout: 15000 }, (err) => resolve(err === null));
  });
}

/** The interpreter selected in the Python extension, when it is installed. */
async function pythonExtensionInterpreter(): Promise<string | undefined> {
  interface PythonApi {
    environments?: {
      getActiveEnvironmentPath(resource?: vscode.Uri): { path: string };
      resolveEnvironment(env: { path: string }): Promise<{ executable?: { uri?: vscode.Uri } } | undefined>;
    };
    settings?: { getExecutionDetails(resource?: vscode.Uri): { execCommand?: string[] } };
  }
  const ext = vscode.extensions.getExtension<PythonApi>('ms-python.python');
  if (ext === undefined) return undefined;
  try {
    const api = ext.isActive ? ext.exports : await ext.activate();
    const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
    if (api.environments !== undefined) {
      const env = await api.environments.resolveEnvironment(api.environments.getActiveEnvironmentPath(resource));
      const exe = env?.executable?.uri?.fsPath;
      if (exe) return exe;
    }
    return api.settings?.getExecutionDetails(resource).execCommand?.[0];
  } catch (err) {
    output.warn(`Could not ask the Python extension for its interpreter: ${errorText(err)}`);
    return undefined;
  }
}

async function offerInstallHelp(message: string): Promise<void> {
  const pick = await vscode.window.showErrorMessage(message, 'How to install', 'Open Settings', 'Show Log');
  if (pick === 'How to install') await showInstallHelp();
  // The tab that lists aethel.server.*: in a remote window, the Remote one.
  else if (pick === 'Open Settings') await vscode.commands.executeCommand(settingsCommandFor(remoteWindow()), { query: 'aethel.server' });
  else if (pick === 'Show Log') output.show();
}

/** The extension's README: `vsce` packs it as `readme.md`, the source folder has `README.md`. */
async function showInstallHelp(): Promise<void> {
  for (const name of ['readme.md', 'README.md']) {
    const readme = vscode.Uri.joinPath(extensionContext.extensionUri, name);
    try {
      await vscode.workspace.fs.stat(readme);
    } catch {
      continue;
    }
    await vscode.commands.executeCommand('markdown.showPreview', readme);
    return;
  }
  void vscode.window.showErrorMessage(`Aethel: the extension's README is missing from ${extensionContext.extensionUri.fsPath}.`);
}

/** Stop the server, run `whileStopped` (if any), start it again. */
async function restartServer(whileStopped?: () => Promise<void>): Promise<void> {
  const c = client;
  client = undefined;
  lastStatus = undefined;
  if (c !== undefined) {
    try {
      await c.stop();
    } catch (err) {
      output.warn(`Stopping the server: ${errorText(err)}`);
    }
  }
  if (whileStopped !== undefined) await whileStopped();
  await startServer();
}

// ------------------------------------------------------------------------------ status bar

function showServerStatus(): void {
  if (lastStatus !== undefined) showStatus(renderStatus(lastStatus, autoPickedModel));
}

/**
 * After a generation: with `aethel.model` unset the server picks a model itself and its
 * status says none, so show the one the generation used (from its metrics).
 */
function noteGeneration(metrics: Metrics | null | undefined): void {
  const used = metrics?.model;
  if (typeof used !== 'string' || used === '' || (lastStatus?.model ?? '') !== '') return;
  autoPickedModel = used;
  showServerStatus();
}

/** The metrics of the server's last generation (for runs we did not start ourselves). */
async function lastMetrics(): Promise<Metrics | undefined> {
  try {
    const t = await send<{ last?: Metrics | null }>(CMD_THROUGHPUT);
    return t?.last ?? undefined;
  } catch (err) {
    output.debug(`Could not read the last generation's metrics: ${errorText(err)}`);
    return undefined;
  }
}

function showStatus(view: StatusView): void {
  statusItem.text = view.text;
  const tip = new vscode.MarkdownString(view.tooltip);
  tip.supportThemeIcons = true;
  statusItem.tooltip = tip;
  statusItem.backgroundColor = view.background ? new vscode.ThemeColor(`statusBarItem.${view.background}`) : undefined;
}

interface MenuItem extends vscode.QuickPickItem {
  action: () => Promise<void>;
}

const USE_FOR_COMPLETION: vscode.QuickInputButton = {
  iconPath: new vscode.ThemeIcon('lightbulb-sparkle'),
  tooltip: 'Use for inline completion',
};

/** Click on the status bar: the installed models (pick one), then "Pull a model…" and friends. */
async function statusMenu(): Promise<void> {
  const qp = vscode.window.createQuickPick<MenuItem>();
  qp.title = 'Aethel: choose a model';
  qp.placeholder = 'Select the model for code actions (the button: for inline completion)';
  qp.busy = true;
  qp.matchOnDescription = true;
  qp.show();

  const extras: MenuItem[] = [
    { label: '', kind: vscode.QuickPickItemKind.Separator, action: () => Promise.resolve() },
    { label: '$(cloud-download) Pull a model…', action: pullModel },
    { label: '$(pulse) Show throughput', action: () => showResult(CMD_THROUGHPUT) },
    { label: '$(info) Show model status', action: () => showResult(CMD_MODEL_STATUS) },
    { label: '$(debug-restart) Restart language server', action: () => restartServer() },
    { label: '$(output) Show server log', action: () => Promise.resolve(output.show()) },
  ];
  let modelItems: MenuItem[] = [];
  if (client === undefined) {
    modelItems = [
      {
        label: '$(warning) The language server is not running',
        detail: lastLaunchProblem ?? 'Restart it, or see how to install it.',
        action: showInstallHelp,
      },
    ];
  } else {
    try {
      const models = (await send<ModelInfo[]>(CMD_LIST_MODELS)) ?? [];
      modelItems = modelPickItems(models, lastStatus?.model ?? undefined).map((m) => ({
        label: m.label,
        description: m.description,
        detail: m.detail,
        buttons: [USE_FOR_COMPLETION],
        action: () => selectModel(m.model, undefined),
      }));
      if (modelItems.length === 0) {
        modelItems = [{ label: '$(info) No model installed', detail: 'Pull one to get started.', action: pullModel }];
      }
    } catch (err) {
      modelItems = [{ label: '$(error) Could not list the models', detail: errorText(err), action: () => showResult(CMD_MODEL_STATUS) }];
    }
  }
  qp.items = [...modelItems, ...extras];
  qp.busy = false;

  await new Promise<void>((resolve) => {
    qp.onDidTriggerItemButton(async (e) => {
      qp.hide();
      const model = e.item.label.replace(/^\$\([^)]*\)\s*/, '');
      await selectModel(model, 'completion');
    });
    qp.onDidAccept(async () => {
      const item = qp.selectedItems[0];
      qp.hide();
      if (item !== undefined) await item.action();
    });
    qp.onDidHide(() => {
      qp.dispose();
      resolve();
    });
  });
}

async function selectModel(model: string, task: ModelTask | undefined): Promise<void> {
  try {
    const r = await send<{ activeModel?: string; task?: string }>(CMD_SELECT_MODEL, selectModelArgs(model, task));
    const used = r?.activeModel ?? model;
    void vscode.window.setStatusBarMessage(`Aethel: ${used} now serves ${r?.task ?? task ?? 'code actions'}`, 4000);
  } catch (err) {
    void vscode.window.showErrorMessage(`Aethel: could not select ${model}: ${errorText(err)}`);
  }
}

async function pickModel(): Promise<void> {
  await statusMenu();
}

/** "Pull a model…": input box, then a cancellable notification fed by the server's progress. */
async function pullModel(): Promise<void> {
  const model = await vscode.window.showInputBox({
    title: 'Aethel: pull a model',
    prompt: 'Model to download with Ollama (name:tag)',
    placeHolder: 'qwen2.5-coder:1.5b',
    validateInput: validateModelName,
  });
  if (model === undefined) return;
  const args = pullModelArgs(model);
  await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Pulling ${args.model}`, cancellable: true },
    async (progress, token) => {
      const ticket: NotificationTicket = { kind: 'notification', progress, reported: 0, showMessages: true };
      const unwait = router.wait('pull', ticket);
      try {
        await send(CMD_PULL_MODEL, args, token);
        void vscode.window.showInformationMessage(`Aethel: ${args.model} is ready.`, 'Use it').then(async (pick) => {
          if (pick === 'Use it') await selectModel(args.model, undefined);
        });
      } catch (err) {
        if (isCancellation(err, token)) void vscode.window.setStatusBarMessage(`Aethel: pull of ${args.model} cancelled`, 4000);
        else void vscode.window.showErrorMessage(`Aethel: pulling ${args.model} failed: ${errorText(err)}`);
      } finally {
        unwait();
      }
    },
  );
}

// ------------------------------------------------------------------------------ progress routing

/** Returns true when the progress is rendered by us (so VS Code's spinner is skipped). */
function onRoutedProgress(r: RoutedProgress<ProgressTicket>): boolean {
  let ticket = r.ticket;
  if (ticket === undefined) {
    // Started from the light bulb, not by our commands: give it the same UI.
    if (r.value.kind !== 'begin' || r.kind === 'pull' || r.kind === 'other') return false;
    ticket = r.kind === 'explain' ? explanationPanel(explanationTitle(activeSelection('plain', true))) : unrequestedNotification(r.token, r.stream.title);
    router.attach(r.token, ticket);
  }
  if (ticket instanceof StreamPanel) {
    if (r.value.kind === 'begin') ticket.token = r.token;
    else if (ticket.token !== r.token) return true; // a run this panel was taken away from
    const ended = r.value.kind === 'end';
    ticket.onStream(r.stream.text, ended ? r.value.message : undefined, ended);
    if (ended && ticket.cancel === undefined) void settleUnrequestedExplanation(ticket, r.token, r.value.message);
    return true;
  }
  if (r.value.kind === 'end' && ticket.finish !== undefined) {
    ticket.finish();
    void lastMetrics().then(noteGeneration);
    return true;
  }
  if (r.value.kind === 'begin' && ticket.reported > 0) {
    // A further round (e.g. "Repairing Aethel contract (round 1)"): say so, keep the bar.
    ticket.progress.report({ message: r.value.title });
    return true;
  }
  const increment = percentIncrement(ticket.reported, r.stream.percentage);
  ticket.reported += increment;
  const message = ticket.showMessages && r.value.kind !== 'end' ? r.value.message : undefined;
  ticket.progress.report({ message, increment });
  return true;
}

/**
 * A cancellable notification for an AI action the light bulb started (the client runs
 * those commands itself): the same UI as from the palette, instead of VS Code's status-bar
 * progress showing the raw streamed text. Cancel sends `window/workDoneProgress/cancel`.
 */
function unrequestedNotification(token: string, title: string): NotificationTicket {
  const pending: { message?: string; increment?: number }[] = [];
  let real: vscode.Progress<{ message?: string; increment?: number }> | undefined;
  let finish: () => void = () => undefined;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const ticket: NotificationTicket = {
    kind: 'notification',
    progress: { report: (v) => (real !== undefined ? real.report(v) : pending.push(v)) },
    reported: 0,
    showMessages: false,
    finish,
  };
  void vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Aethel: ${title}`, cancellable: true },
    (progress, cancel) => {
      real = progress;
      for (const v of pending.splice(0)) progress.report(v);
      cancel.onCancellationRequested(() => {
        void client?.sendNotification(WorkDoneProgressCancelNotification.type, { token });
        finish();
      });
      return done;
    },
  );
  return ticket;
}

/** A light-bulb explanation ended: the same footer as from the palette (metrics, model). */
async function settleUnrequestedExplanation(panel: StreamPanel, token: string, endMessage: string | undefined): Promise<void> {
  if (endMessage === undefined || !/tokens/.test(endMessage)) return; // an error or a stop says so itself
  const metrics = await lastMetrics();
  noteGeneration(metrics);
  if (panel.token === token && metrics !== undefined) panel.setFooter(metricsLine(metrics));
}

// ------------------------------------------------------------------------------ the streaming panel

/** The one explanation tab: each explanation (palette or light bulb) reuses it. */
let explanation: StreamPanel | undefined;

function explanationPanel(title: string): StreamPanel {
  if (explanation === undefined || explanation.isDisposed) explanation = new StreamPanel(title);
  else explanation.restart(title);
  return explanation;
}

/** `Explanation: transfer.ae:3-7`, for both ways of asking. */
function explanationTitle(ctx: EditorContext | undefined): string {
  if (ctx === undefined) return 'Explanation';
  const name = path.basename(ctx.editor.document.uri.path);
  const { start, end } = ctx.range;
  // Whole lines selected with Shift+Down end at column 0 of the next line: not part of it.
  const last = end.character === 0 && end.line > start.line ? end.line - 1 : end.line;
  return `Explanation: ${name}:${start.line + 1}-${last + 1}`;
}

/** Explanation panels still streaming, and the last ones that finished (with when). */
const streamingPanels = new Set<StreamPanel>();
const recentExplanations: { at: number; panel: StreamPanel }[] = [];

/**
 * The server opens its Markdown explanation at the end: our panel already shows it, so the
 * document is not opened again; the panel's "Open as Markdown" opens that file instead.
 */
function explanationJustShown(uri: string): boolean {
  if (!isExplanationDocument(uri)) return false;
  const now = Date.now();
  const recent = recentExplanations.filter((e) => now - e.at < 15000).map((e) => e.panel);
  const panel = [...streamingPanels][0] ?? recent.at(-1);
  if (panel === undefined) return false;
  panel.savedDocument ??= uri;
  return true;
}

/** A webview that shows Markdown as it streams in; renders at most every 80 ms. */
class StreamPanel {
  token: string | undefined;
  cancel: vscode.CancellationTokenSource | undefined;
  /** The Markdown file the server wrote for this explanation, if it said so. */
  savedDocument: string | undefined;
  private readonly panel: vscode.WebviewPanel;
  private text = '';
  private footer = '';
  private streaming = true;
  private timer: NodeJS.Timeout | undefined;
  private rendering = false;
  private dirty = false;
  private disposed = false;

  /** Bumped by `restart`: a command's late result for an earlier run is ignored. */
  run = 0;

  get isDisposed(): boolean {
    return this.disposed;
  }

  /** Take the tab for a new run: the previous one (if still going) is stopped. */
  restart(title: string): void {
    if (this.streaming && this.token !== undefined) this.stop();
    this.run++;
    this.token = undefined;
    this.cancel = undefined;
    this.savedDocument = undefined;
    this.text = '';
    this.footer = '';
    this.streaming = true;
    this.settled = false;
    this.title = title;
    this.panel.title = title;
    this.panel.reveal(vscode.ViewColumn.Beside, true);
    this.schedule(0);
  }

  setFooter(footer: string): void {
    this.footer = footer;
    this.schedule(0);
  }

  private title: string;

  constructor(title: string) {
    this.title = title;
    this.panel = vscode.window.createWebviewPanel('aethel.explanation', title, { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true }, {
      enableScripts: true,
      retainContextWhenHidden: true,
      localResourceRoots: [],
    });
    this.panel.webview.html = panelHtml({ cspSource: this.panel.webview.cspSource, nonce: makeNonce(), title });
    this.panel.onDidDispose(() => {
      this.disposed = true;
      if (this.streaming) this.stop();
      streamingPanels.delete(this);
    });
    this.panel.webview.onDidReceiveMessage(async (m: unknown) => {
      if (!isPanelRequest(m)) return;
      if (m.type === 'stop') this.stop();
      else if (m.type === 'copy') await vscode.env.clipboard.writeText(this.text);
      else {
        const doc =
          this.savedDocument !== undefined
            ? await vscode.workspace.openTextDocument(vscode.Uri.parse(this.savedDocument))
            : await vscode.workspace.openTextDocument({ language: 'markdown', content: this.text });
        await vscode.window.showTextDocument(doc, vscode.ViewColumn.Active);
      }
    });
  }

  /** Streamed text so far (the concatenated report deltas). */
  onStream(text: string, endMessage: string | undefined, ended: boolean): void {
    if (this.settled) return; // stopped, failed or finished by the command's result already
    this.text = text;
    if (ended) {
      this.footer = endMessage ?? '';
      this.markDone();
    } else {
      streamingPanels.add(this);
      this.footer = 'Generating…';
    }
    this.schedule(ended ? 0 : 80);
  }

  /** The command's result is the authoritative text. */
  finish(text: string, footer: string): void {
    this.text = text;
    this.footer = footer || this.footer;
    this.settled = true;
    this.markDone();
    this.schedule(0);
  }

  /** The user pressed Stop: keep what was generated, say it is incomplete. */
  stopped(): void {
    this.settled = true;
    this.markDone();
    this.footer = 'Stopped.';
    this.text = this.text === '' ? '_Stopped before the model answered._' : `${this.text}\n\n_(stopped)_`;
    this.schedule(0);
  }

  fail(message: string): void {
    this.settled = true;
    this.markDone();
    this.footer = '';
    this.text = (this.text ? this.text + '\n\n---\n\n' : '') + `**Error:** ${message}`;
    this.schedule(0);
  }

  /** Set once the command's outcome (result, error, stop) is known; later progress is moot. */
  private settled = false;

  private markDone(): void {
    if (this.streaming && streamingPanels.delete(this)) {
      recentExplanations.push({ at: Date.now(), panel: this });
      if (recentExplanations.length > 10) recentExplanations.shift();
    }
    this.streaming = false;
  }

  /**
   * Stop the generation: cancel our own request, or (a light-bulb run, which has none)
   * its progress. One of the two only: a second cancel would reach a progress the server
   * has already ended, and it logs an error for that.
   */
  stop(): void {
    if (this.cancel !== undefined) {
      this.cancel.cancel();
      return;
    }
    if (this.token !== undefined && this.streaming && client !== undefined) {
      void client.sendNotification(WorkDoneProgressCancelNotification.type, { token: this.token });
    }
  }

  showMarkdown(markdown: string): void {
    this.finish(markdown, '');
  }

  private schedule(delay: number): void {
    this.dirty = true;
    if (this.timer !== undefined) {
      if (delay > 0) return;
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.render();
    }, delay);
  }

  private async render(): Promise<void> {
    if (this.disposed) return;
    if (this.rendering) return; // the running render picks up `dirty`
    this.rendering = true;
    try {
      while (this.dirty && !this.disposed) {
        this.dirty = false;
        const html = await renderMarkdown(this.text);
        const update: PanelUpdate = { type: 'update', html, footer: this.footer, streaming: this.streaming, title: this.title };
        await this.panel.webview.postMessage(update);
      }
    } finally {
      this.rendering = false;
    }
  }
}

async function renderMarkdown(text: string): Promise<string> {
  if (text === '') return '<p><em>Waiting for the model…</em></p>';
  try {
    const html = await vscode.commands.executeCommand<string>('markdown.api.render', text);
    if (typeof html === 'string') return html;
  } catch {
    // The built-in Markdown extension is disabled: show plain text.
  }
  return `<pre>${escapeHtml(text)}</pre>`;
}

// ------------------------------------------------------------------------------ commands

function registerCommands(context: vscode.ExtensionContext): void {
  const handlers: Record<ServerCommand, () => Promise<void>> = {
    [CMD_MODEL_STATUS]: () => showResult(CMD_MODEL_STATUS),
    [CMD_THROUGHPUT]: () => showResult(CMD_THROUGHPUT),
    [CMD_LIST_MODELS]: pickModel,
    [CMD_SELECT_MODEL]: pickModel,
    [CMD_PULL_MODEL]: pullModel,
    [CMD_EXPLAIN_SELECTION]: explainSelection,
    [CMD_GENERATE_CONTRACT]: () => generateContract(CMD_GENERATE_CONTRACT, 'Generating Aethel contract'),
    [CMD_DISTILL_CONTRACT]: distillContract,
    [CMD_IMPROVE_SELECTION]: () => editingAction(CMD_IMPROVE_SELECTION, 'improve', 'Improving selection'),
    [CMD_DOCUMENT_SELECTION]: () => editingAction(CMD_DOCUMENT_SELECTION, 'document', 'Adding documentation'),
    [CMD_FIX_WITH_AI]: () => editingAction(CMD_FIX_WITH_AI, 'fix', 'Fixing with AI'),
    [CMD_DOCTOR]: () => showResult(CMD_DOCTOR),
    [CMD_INSPECT_LAST]: () => showResult(CMD_INSPECT_LAST),
    [CMD_RECOMMEND_MODELS]: () => showResult(CMD_RECOMMEND_MODELS),
  };
  for (const id of ALL_SERVER_COMMANDS) {
    context.subscriptions.push(vscode.commands.registerCommand(forwardingId(id), guarded(handlers[id])));
  }
  context.subscriptions.push(
    vscode.commands.registerCommand(CLIENT_ONLY_COMMANDS.restartServer, guarded(() => restartServer())),
    vscode.commands.registerCommand(CLIENT_ONLY_COMMANDS.showLog, () => output.show()),
    vscode.commands.registerCommand(CLIENT_ONLY_COMMANDS.howToInstall, guarded(showInstallHelp)),
    vscode.commands.registerCommand(CLIENT_ONLY_COMMANDS.statusMenu, guarded(statusMenu)),
  );
}

/** Never let a command fail silently. */
function guarded(fn: () => Promise<void>): () => Promise<void> {
  return async () => {
    try {
      await fn();
    } catch (err) {
      output.error(errorText(err));
      void vscode.window.showErrorMessage(`Aethel: ${errorText(err)}`);
    }
  };
}

/** Send `workspace/executeCommand` to the server. */
async function send<R>(command: string, args?: object, token?: vscode.CancellationToken): Promise<R | undefined> {
  const c = client;
  if (c === undefined || c.state === State.Stopped) {
    throw new Error(`the language server is not running${lastLaunchProblem ? ` (${lastLaunchProblem})` : ''}. Run "Aethel: Restart language server".`);
  }
  const offered = c.initializeResult?.capabilities.executeCommandProvider?.commands;
  if (offered !== undefined && !offered.includes(command)) {
    const version = c.initializeResult?.serverInfo?.version ?? 'unknown version';
    throw new Error(`this aethel-lsp (${version}) has no ${command} command; update the server.`);
  }
  const params = executeCommandParams(command, args);
  return token === undefined
    ? ((await c.sendRequest(ExecuteCommandRequest.type, params)) as R | undefined)
    : ((await c.sendRequest(ExecuteCommandRequest.type, params, token)) as R | undefined);
}

interface EditorContext {
  editor: vscode.TextEditor;
  uri: string;
  range: LspRange;
}

function activeSelection(kind: 'plain' | 'fix', quiet = false): EditorContext | undefined {
  const editor = vscode.window.activeTextEditor;
  if (editor === undefined) {
    if (!quiet) void vscode.window.showWarningMessage('Aethel: open a file and select some code first.');
    return undefined;
  }
  const doc = editor.document;
  const sel = toLsp(editor.selection);
  const lineLength = (line: number): number => doc.lineAt(Math.min(line, doc.lineCount - 1)).text.length;
  const range =
    kind === 'fix'
      ? fixRange(sel, vscode.languages.getDiagnostics(doc.uri).map((d) => toLsp(d.range)), lineLength)
      : effectiveRange(sel, lineLength);
  return { editor, uri: doc.uri.toString(), range };
}

function toLsp(r: vscode.Range | vscode.Selection): LspRange {
  const s = r instanceof vscode.Selection ? r.anchor : r.start;
  const e = r instanceof vscode.Selection ? r.active : r.end;
  return { start: { line: s.line, character: s.character }, end: { line: e.line, character: e.character } };
}

async function explainSelection(): Promise<void> {
  const ctx = activeSelection('plain');
  if (ctx === undefined) return;
  const panel = explanationPanel(explanationTitle(ctx));
  const run = panel.run;
  const cts = new vscode.CancellationTokenSource();
  panel.cancel = cts;
  const unwait = router.wait('explain', panel);
  try {
    const result = await send<TextResult>(CMD_EXPLAIN_SELECTION, selectionArgs(ctx.uri, ctx.range), cts.token);
    noteGeneration(result?.metrics);
    if (panel.run !== run) return; // the tab was taken by a newer explanation
    if (typeof result?.document === 'string') panel.savedDocument = result.document;
    panel.finish(result?.text ?? '', metricsLine(result?.metrics));
  } catch (err) {
    if (panel.run !== run) return;
    if (isCancellation(err, cts.token)) panel.stopped();
    else panel.fail(errorText(err));
  } finally {
    unwait();
    cts.dispose();
  }
}

/** Where a contract goes and what it should do: the cursor or selection, and a description
 * asked for only when the server has none (no selection, no `#` comment line). */
async function contractTarget(): Promise<{ uri: string; range: LspRange; description?: string } | undefined> {
  const ctx = activeSelection('plain');
  if (ctx === undefined) return undefined;
  const doc = ctx.editor.document;
  const sel = ctx.editor.selection;
  let description: string | undefined;
  if (needsDescription(doc.getText(sel), doc.lineAt(sel.active.line).text, doc.getText())) {
    description = await vscode.window.showInputBox({
      title: 'Aethel: generate a contract',
      prompt: 'Describe the intent (or write it as a # comment line and run this command on it)',
      placeHolder: 'transfer with a 1% fee to the treasury',
    });
    if (description === undefined) return undefined;
  }
  const range = sel.isEmpty ? { start: toLsp(sel).start, end: toLsp(sel).start } : ctx.range;
  return { uri: ctx.uri, range, description };
}

/** Best of N: the server checks every candidate; a panel shows each one's verdict. */
async function distillContract(): Promise<void> {
  const target = await contractTarget();
  if (target === undefined) return;
  const result = await withNotificationProgress(
    'generate',
    'Distilling Aethel contract',
    (token) => send<unknown>(CMD_DISTILL_CONTRACT, generateArgs(target.uri, target.range, target.description), token),
    true, // "3/6 checked, 2 valid · #4 qwen2.5-coder:1.5b valid": a count, not streamed tokens
  );
  if (!isDistillResult(result)) return;
  new StreamPanel(`Aethel: best of ${result.candidates.length}`).showMarkdown(distillMarkdown(result));
  if (result.best?.valid) {
    noteGeneration({ model: result.best.model });
    void vscode.window.setStatusBarMessage(`Aethel: best of ${result.candidates.length}: ${result.best.model} chosen`, 6000);
  } else {
    void vscode.window.showWarningMessage(`Aethel: no candidate contract passed the checker. ${result.explanation.split('\n')[0]}`);
  }
}

/** Generate a contract at the cursor. */
async function generateContract(command: ServerCommand, title: string): Promise<void> {
  const target = await contractTarget();
  if (target === undefined) return;
  const result = await withNotificationProgress('generate', title, (token) =>
    send<TextResult>(command, generateArgs(target.uri, target.range, target.description), token),
  );
  if (result === undefined) return;
  noteGeneration(result.metrics);
  reportEdit('Generated contract', result);
  if (result.valid === false) {
    const pick = await vscode.window.showWarningMessage(
      `Aethel: the generated contract still has ${result.diagnostics?.length ?? 'some'} problem(s) after ${result.attempts ?? '?'} attempt(s)` +
        (result.applied ? ' (inserted, marked as invalid).' : ' and was not inserted.'),
      'Show text',
    );
    if (pick === 'Show text') await openText(result.text, LANGUAGE_ID);
  }
}

async function editingAction(command: ServerCommand, kind: 'improve' | 'document' | 'fix', title: string): Promise<void> {
  const ctx = activeSelection(kind === 'fix' ? 'fix' : 'plain');
  if (ctx === undefined) return;
  const args =
    kind === 'fix'
      ? fixArgs(
          ctx.uri,
          ctx.range,
          vscode.languages.getDiagnostics(ctx.editor.document.uri).map((d) => ({
            range: toLsp(d.range),
            message: d.message,
            severity: lspSeverity(d.severity),
            source: d.source,
          })),
        )
      : selectionArgs(ctx.uri, ctx.range);
  const result = await withNotificationProgress(kind, title, (token) => send<TextResult>(command, args, token));
  if (result === undefined) return;
  noteGeneration(result.metrics);
  reportEdit(title, result);
}

/**
 * Run a generation under a cancellable notification fed by the server's progress. Its
 * messages are shown only with `showMessages` (a count such as the distiller's): a plain
 * generation's messages are the raw streamed text.
 */
async function withNotificationProgress<R>(
  kind: 'generate' | 'improve' | 'document' | 'fix',
  title: string,
  run: (token: vscode.CancellationToken) => Promise<R | undefined>,
  showMessages = false,
): Promise<R | undefined> {
  return vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Aethel: ${title}`, cancellable: true },
    async (progress, token) => {
      const ticket: NotificationTicket = { kind: 'notification', progress, reported: 0, showMessages };
      const unwait = router.wait(kind, ticket, kind === 'generate');
      try {
        return await run(token);
      } catch (err) {
        if (isCancellation(err, token)) {
          void vscode.window.setStatusBarMessage(`Aethel: ${title.toLowerCase()} cancelled`, 4000);
          return undefined;
        }
        throw err;
      } finally {
        unwait();
      }
    },
  );
}

function reportEdit(what: string, result: TextResult): void {
  const line = metricsLine(result.metrics);
  if (result.applied === false && result.valid !== false) {
    void vscode.window.showWarningMessage(`Aethel: ${what}: the edit was not applied (the document changed?).`, 'Show text').then(async (pick) => {
      if (pick === 'Show text') await openText(result.text, undefined);
    });
    return;
  }
  void vscode.window.setStatusBarMessage(`$(check) Aethel: ${what.toLowerCase()} done${line ? ` · ${line}` : ''}`, 6000);
}

async function openText(text: string, language: string | undefined): Promise<void> {
  const doc = await vscode.workspace.openTextDocument({ content: text, language });
  await vscode.window.showTextDocument(doc, vscode.ViewColumn.Beside);
}

/** Informational commands: the result, rendered as Markdown in a panel. */
async function showResult(command: ServerCommand): Promise<void> {
  const title = COMMAND_TITLES[command];
  const value = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Window, title: `Aethel: ${title}` },
    () => send<unknown>(command),
  );
  if (isObjectWithDocument(value)) {
    // The server wrote a Markdown report and VS Code opened it (aethel.doctor): nothing to add.
    const summary = typeof value.summary === 'string' ? value.summary : `${title}: done`;
    void vscode.window.setStatusBarMessage(`Aethel: ${summary}`, 6000);
    return;
  }
  const markdown =
    command === CMD_MODEL_STATUS
      ? modelStatusMarkdown(value)
      : command === CMD_THROUGHPUT
        ? throughputMarkdown(value)
        : genericResultMarkdown(`Aethel: ${title}`, value);
  new StreamPanel(`Aethel: ${title}`).showMarkdown(markdown);
}

// ------------------------------------------------------------------------------ helpers

function isObjectWithDocument(v: unknown): v is { document: string; summary?: unknown } {
  return typeof v === 'object' && v !== null && typeof (v as { document?: unknown }).document === 'string';
}

function isCancellation(err: unknown, token: vscode.CancellationToken): boolean {
  if (token.isCancellationRequested) return true;
  if (err instanceof vscode.CancellationError) return true;
  return err instanceof ResponseError && (err.code === LSPErrorCodes.RequestCancelled || err.code === LSPErrorCodes.ServerCancelled);
}

function errorText(err: unknown): string {
  if (err instanceof ResponseError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
