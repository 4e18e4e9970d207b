/**
 * What the extension answers to the server's `workspace/configuration` (section `aethel`).
 *
 * VS Code's own answer would include every contributed default, and editor settings are the
 * server's highest-precedence source: the package.json defaults would silently override the
 * user's `config.toml` and the workspace's `aethel.toml`. So we send only values the user
 * actually set (user, workspace or folder settings), nested the way the server reads them,
 * minus the extension's own keys (`server.*`, `trace.*`). No `vscode` import here.
 */

import { CLIENT_ONLY_ROOTS, MACHINE_SCOPED, APPLICATION_SCOPED, type JsonValue } from './settingsSchema';

/**
 * The part of `WorkspaceConfiguration.inspect()` we use. VS Code also returns, without
 * typing them, `globalLocalValue` (the User settings) and `globalRemoteValue` (the Remote
 * settings of a remote window: code-server, Remote-SSH, WSL, containers).
 */
export interface InspectedValue {
  globalValue?: unknown;
  globalLocalValue?: unknown;
  globalRemoteValue?: unknown;
  workspaceValue?: unknown;
  workspaceFolderValue?: unknown;
}

/** Where a machine-scoped value came from: which Settings tab shows it. */
export type SettingSource = 'remote' | 'user' | 'default';

export interface SourcedValue {
  value: unknown;
  source: SettingSource;
}

/**
 * A machine-scoped setting, read the same way at every (re)start. In a remote window
 * (code-server, Remote-SSH, WSL, containers) VS Code applies machine settings from the
 * Remote settings only and greys out a User value ("cannot be applied in this window"),
 * yet hands that User value to extensions at window load and drops it after the first
 * configuration change: a restart then silently lost the configured server command. So in
 * a remote window we follow VS Code's rule from the start (the Remote value, else the
 * default) and `ignoredUserValue` tells the person about a User value instead.
 */
export function machineValue(inspected: InspectedValue | undefined, remoteWindow: boolean): SourcedValue {
  if (inspected === undefined) return { value: undefined, source: 'default' };
  if (remoteWindow) {
    return inspected.globalRemoteValue !== undefined ? { value: inspected.globalRemoteValue, source: 'remote' } : { value: undefined, source: 'default' };
  }
  return inspected.globalValue !== undefined ? { value: inspected.globalValue, source: 'user' } : { value: undefined, source: 'default' };
}

/** A User value of a machine setting that a remote window does not apply (visible at window load). */
export function ignoredUserValue(inspected: InspectedValue | undefined, remoteWindow: boolean): unknown {
  if (!remoteWindow || inspected === undefined || inspected.globalRemoteValue !== undefined) return undefined;
  return inspected.globalLocalValue ?? inspected.globalValue;
}

/** `Remote settings`, `User settings`, `the default`: for messages. */
export function sourceLabel(source: SettingSource): string {
  return source === 'remote' ? 'Remote settings' : source === 'user' ? 'User settings' : 'the default';
}

/**
 * The Settings command that shows the machine settings that apply: the Remote tab in a
 * remote window (the only tab that lists them there), else the User tab.
 */
export function settingsCommandFor(remoteWindow: boolean): string {
  return remoteWindow ? 'workbench.action.openRemoteSettings' : 'workbench.action.openSettings';
}

export type NestedSettings = { [key: string]: JsonValue };

/** The value the user chose for one key, or undefined when only the default applies. */
export function explicitValue(key: string, inspected: InspectedValue | undefined, remoteWindow = false): unknown {
  if (inspected === undefined) return undefined;
  // User-only settings: a workspace file must not decide where code goes.
  if (MACHINE_SCOPED.has(key)) return machineValue(inspected, remoteWindow).value;
  if (APPLICATION_SCOPED.has(key)) return remoteWindow ? (inspected.globalLocalValue ?? inspected.globalValue) : inspected.globalValue;
  if (inspected.workspaceFolderValue !== undefined) return inspected.workspaceFolderValue;
  if (inspected.workspaceValue !== undefined) return inspected.workspaceValue;
  return inspected.globalValue;
}

/**
 * Nested object of explicitly set server settings.
 * `keys` are relative to the section (`completion.enabled`), as in docs/configuration.md.
 */
export function explicitServerSettings(
  keys: readonly string[],
  inspect: (key: string) => InspectedValue | undefined,
  remoteWindow = false,
): NestedSettings {
  const out: NestedSettings = {};
  for (const key of keys) {
    if (isClientOnly(key)) continue;
    const value = explicitValue(key, inspect(key), remoteWindow);
    if (value === undefined) continue;
    setNested(out, key.split('.'), value as JsonValue);
  }
  return out;
}

export function isClientOnly(key: string): boolean {
  return CLIENT_ONLY_ROOTS.has(key.split('.')[0] ?? '');
}

function setNested(target: NestedSettings, path: string[], value: JsonValue): void {
  let node = target;
  for (const part of path.slice(0, -1)) {
    const next = node[part];
    if (next === undefined || next === null || typeof next !== 'object' || Array.isArray(next)) {
      const fresh: NestedSettings = {};
      node[part] = fresh;
      node = fresh;
    } else {
      node = next;
    }
  }
  const last = path[path.length - 1];
  if (last !== undefined) node[last] = value;
}

/**
 * Answer one `workspace/configuration` item: `aethel` -> the nested object,
 * `aethel.completion` -> its sub-object, `aethel.maxTokens` -> the scalar (null when unset).
 * Returns undefined for sections that are not ours (the caller defers to VS Code).
 */
export function answerConfigurationItem(section: string | undefined, settings: NestedSettings): JsonValue | undefined {
  if (section === undefined) return undefined;
  if (section === 'aethel') return settings;
  if (!section.startsWith('aethel.')) return undefined;
  let node: JsonValue = settings;
  for (const part of section.slice('aethel.'.length).split('.')) {
    if (node === null || typeof node !== 'object' || Array.isArray(node)) return null;
    const child: JsonValue | undefined = node[part];
    if (child === undefined) return null;
    node = child;
  }
  return node;
}
