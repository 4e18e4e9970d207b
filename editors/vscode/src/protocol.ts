/**
 * Mirror of `aethel_lsp/protocol.py`: the server's public ids, and the client-side
 * forwarding ids that put them in the command palette.
 *
 * Why forwarding ids: vscode-languageclient registers every id the server lists in
 * `executeCommandProvider.commands` with `vscode.commands.registerCommand` itself, so the
 * extension registering `aethel.explainSelection` too would fail with "command already
 * exists". Our palette entries therefore use `aethel-vscode.<name>` and forward.
 *
 * `test/manifest.test.ts` keeps this file, `package.json` and `protocol.py` in sync.
 * This module must not import `vscode` (it is unit-tested in plain node).
 */

export const SERVER_NAME = 'aethel-lsp';
export const LANGUAGE_ID = 'aethel';
export const CLIENT_ID = 'aethel';

// workspace/executeCommand ids (server side)
export const CMD_MODEL_STATUS = 'aethel.modelStatus';
export const CMD_THROUGHPUT = 'aethel.throughput';
export const CMD_LIST_MODELS = 'aethel.listModels';
export const CMD_SELECT_MODEL = 'aethel.selectModel';
export const CMD_PULL_MODEL = 'aethel.pullModel';
export const CMD_EXPLAIN_SELECTION = 'aethel.explainSelection';
export const CMD_GENERATE_CONTRACT = 'aethel.generateContract';
export const CMD_IMPROVE_SELECTION = 'aethel.improveSelection';
export const CMD_DOCUMENT_SELECTION = 'aethel.documentSelection';
export const CMD_FIX_WITH_AI = 'aethel.fixWithAI';
export const CMD_DOCTOR = 'aethel.doctor';
export const CMD_INSPECT_LAST = 'aethel.inspectLast';
export const CMD_RECOMMEND_MODELS = 'aethel.recommendModels';
export const CMD_DISTILL_CONTRACT = 'aethel.distillContract';

export const ALL_SERVER_COMMANDS = [
  CMD_MODEL_STATUS,
  CMD_THROUGHPUT,
  CMD_LIST_MODELS,
  CMD_SELECT_MODEL,
  CMD_PULL_MODEL,
  CMD_EXPLAIN_SELECTION,
  CMD_GENERATE_CONTRACT,
  CMD_IMPROVE_SELECTION,
  CMD_DOCUMENT_SELECTION,
  CMD_FIX_WITH_AI,
  CMD_DOCTOR,
  CMD_INSPECT_LAST,
  CMD_RECOMMEND_MODELS,
  CMD_DISTILL_CONTRACT,
] as const;

export type ServerCommand = (typeof ALL_SERVER_COMMANDS)[number];

// server -> client notification
export const NOTIFY_STATUS = 'aethel/status';

// workspace/configuration section
export const CONFIG_SECTION = 'aethel';

// Code action titles (the server's); begin titles of progress contain the same verbs.
export const TITLE_GENERATE_CONTRACT = 'Generate Aethel contract';
export const TITLE_DISTILL_CONTRACT = 'Generate Aethel contract (best of {n})';
export const TITLE_EXPLAIN = 'Explain selection';
export const TITLE_IMPROVE = 'Improve selection';
export const TITLE_DOCUMENT = 'Add documentation';
export const TITLE_FIX = 'Fix with AI';

/** Prefix of the extension's own command ids (never equal to a server id). */
export const CLIENT_COMMAND_PREFIX = 'aethel-vscode.';

/** `aethel.explainSelection` -> `aethel-vscode.explainSelection`. */
export function forwardingId(serverCommand: string): string {
  const name = serverCommand.startsWith('aethel.') ? serverCommand.slice('aethel.'.length) : serverCommand;
  return CLIENT_COMMAND_PREFIX + name;
}

/** Commands that exist only in the extension (no server counterpart). */
export const CLIENT_ONLY_COMMANDS = {
  restartServer: `${CLIENT_COMMAND_PREFIX}restartServer`,
  showLog: `${CLIENT_COMMAND_PREFIX}showLog`,
  howToInstall: `${CLIENT_COMMAND_PREFIX}howToInstall`,
  statusMenu: `${CLIENT_COMMAND_PREFIX}statusMenu`,
} as const;

/** Palette titles of the forwarding commands (category "Aethel" is added by package.json). */
export const COMMAND_TITLES: Record<ServerCommand, string> = {
  [CMD_MODEL_STATUS]: 'Show model status',
  [CMD_THROUGHPUT]: 'Show throughput',
  [CMD_LIST_MODELS]: 'List installed models',
  [CMD_SELECT_MODEL]: 'Select model…',
  [CMD_PULL_MODEL]: 'Pull a model…',
  [CMD_EXPLAIN_SELECTION]: TITLE_EXPLAIN,
  [CMD_GENERATE_CONTRACT]: TITLE_GENERATE_CONTRACT,
  [CMD_IMPROVE_SELECTION]: TITLE_IMPROVE,
  [CMD_DOCUMENT_SELECTION]: TITLE_DOCUMENT,
  [CMD_FIX_WITH_AI]: TITLE_FIX,
  [CMD_DOCTOR]: 'Doctor: check the setup',
  [CMD_INSPECT_LAST]: 'Inspect last request',
  [CMD_RECOMMEND_MODELS]: 'Recommend models for this machine',
  [CMD_DISTILL_CONTRACT]: 'Distill Aethel contract (best of several candidates)',
};

/** The `aethel/status` payload (issue 4). */
export type StatusState = 'ready' | 'busy' | 'offline' | 'error';

export interface StatusParams {
  state: StatusState;
  engine?: string | null;
  host?: string | null;
  model?: string | null;
  tokensPerSecond?: number | null;
  message?: string | null;
}

/** One entry of `aethel.listModels` (ModelInfo.to_json in engine/types.py). */
export interface ModelInfo {
  name: string;
  sizeBytes?: number | null;
  parameters?: number | null;
  contextLength?: number | null;
  family?: string | null;
  quantization?: string | null;
  capabilities?: string[];
}

/** Metrics.to_json (the CLI's generate shape). */
export interface Metrics {
  model?: string;
  promptTokens?: number | null;
  tokensGenerated?: number | null;
  timeToFirstTokenMs?: number | null;
  latencyMs?: number | null;
  loadMs?: number | null;
  tokensPerSecond?: number | null;
  doneReason?: string | null;
}

export interface TextResult {
  text: string;
  metrics?: Metrics | null;
  applied?: boolean;
  valid?: boolean;
  attempts?: number;
  diagnostics?: unknown[];
  /** explainSelection: the Markdown file the server wrote and showed (if the client can show documents). */
  document?: string | null;
}
