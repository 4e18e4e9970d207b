/**
 * Status bar text for the `aethel/status` notification: state icon, active model, tok/s.
 * Pure (no `vscode` import) so the exact strings are unit-tested.
 */

import type { ModelInfo, StatusParams } from './protocol';

export interface StatusView {
  text: string;
  /** Markdown tooltip. */
  tooltip: string;
  /** Which theme colour to use as background (`statusBarItem.<x>Background`), if any. */
  background?: 'errorBackground' | 'warningBackground';
}

const ICONS: Record<string, string> = {
  ready: '$(sparkle)',
  busy: '$(loading~spin)',
  offline: '$(debug-disconnect)',
  error: '$(error)',
};

/**
 * Status bar text, e.g. `$(sparkle) qwen2.5-coder:1.5b · 51.7 tok/s`. `autoPicked` is the
 * model the last generation used when the server has none set (it picked one itself).
 */
export function renderStatus(p: StatusParams, autoPicked?: string): StatusView {
  const icon = ICONS[p.state] ?? '$(question)';
  const parts: string[] = [];
  const configured = (p.model ?? '').trim();
  const model = configured !== '' ? configured : (autoPicked ?? '').trim();
  if (p.state === 'offline') parts.push('offline');
  else if (p.state === 'error' && model === '') parts.push('error');
  else parts.push(model === '' ? 'no model' : model);
  const rate = formatRate(p.tokensPerSecond);
  if (rate !== undefined && (p.state === 'ready' || p.state === 'busy')) parts.push(rate);
  const text = `${icon} ${parts.join(' · ')}`;
  const auto = configured === '' && model !== '';
  return { text, tooltip: renderTooltip(auto ? { ...p, model } : p, auto), background: backgroundFor(p.state) };
}

function backgroundFor(state: string): StatusView['background'] {
  if (state === 'error') return 'errorBackground';
  if (state === 'offline') return 'warningBackground';
  return undefined;
}

/** `51.7 tok/s`, or undefined when there is no measurement yet. */
export function formatRate(tokensPerSecond: number | null | undefined): string | undefined {
  if (tokensPerSecond === null || tokensPerSecond === undefined || !Number.isFinite(tokensPerSecond) || tokensPerSecond <= 0) {
    return undefined;
  }
  return `${tokensPerSecond.toFixed(1)} tok/s`;
}

function renderTooltip(p: StatusParams, autoPicked = false): string {
  const lines = [`**Aethel** — ${p.state}`];
  if (p.model) lines.push(`Model: \`${p.model}\`${autoPicked ? ' (picked automatically: set `aethel.model` to choose)' : ''}`);
  if (p.engine) lines.push(`Engine: ${p.engine}${p.host ? ` at \`${p.host}\`` : ''}`);
  const rate = formatRate(p.tokensPerSecond);
  if (rate) lines.push(`Last generation: ${rate}`);
  if (p.message) lines.push('', escapeMarkdown(p.message));
  lines.push('', 'Click to choose a model or pull one.');
  return lines.join('\n\n').replace(/\n\n\n\n/g, '\n\n');
}

/** Escape the characters that would turn a server message into Markdown markup. */
export function escapeMarkdown(text: string): string {
  return text.replace(/([\\`*_{}[\]<>#|])/g, '\\$1');
}

export const STARTING_VIEW: StatusView = { text: '$(sync~spin) Aethel: starting', tooltip: 'Starting the aethel-lsp language server…' };
export const STOPPED_VIEW: StatusView = {
  text: '$(circle-slash) Aethel: stopped',
  tooltip: 'The aethel-lsp language server is not running. Click for options.',
  background: 'warningBackground',
};

/** `4.7 GB`, `512 MB`. */
export function formatBytes(bytes: number | null | undefined): string | undefined {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes) || bytes <= 0) return undefined;
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value >= 10 || unit === 0 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}

/** `1.5B`, `135M` from an exact parameter count. */
export function formatParameters(count: number | null | undefined): string | undefined {
  if (count === null || count === undefined || !Number.isFinite(count) || count <= 0) return undefined;
  if (count >= 1e9) return `${(count / 1e9).toFixed(1).replace(/\.0$/, '')}B`;
  if (count >= 1e6) return `${Math.round(count / 1e6)}M`;
  return `${count}`;
}

export interface ModelPickItem {
  label: string;
  description: string;
  detail?: string;
  model: string;
  active: boolean;
}

/** Can this model write text? Embedding-only models (capabilities without `completion`) cannot. */
export function canGenerate(m: ModelInfo): boolean {
  const caps = m.capabilities ?? [];
  return caps.length === 0 || caps.includes('completion');
}

/** Quick pick rows for installed models that can generate; the active one first and checked. */
export function modelPickItems(models: readonly ModelInfo[], activeModel: string | undefined): ModelPickItem[] {
  const items = models.filter(canGenerate).map((m) => {
    const active = m.name === activeModel;
    const description = [formatParameters(m.parameters), m.quantization ?? undefined, formatBytes(m.sizeBytes), m.family ?? undefined]
      .filter((x): x is string => typeof x === 'string' && x !== '')
      .join(' · ');
    const caps = (m.capabilities ?? []).join(', ');
    const detailParts = [caps === '' ? undefined : caps, m.contextLength ? `${m.contextLength} ctx` : undefined].filter(
      (x): x is string => x !== undefined,
    );
    return {
      label: `${active ? '$(check)' : '$(circle-large-outline)'} ${m.name}`,
      description,
      detail: detailParts.length > 0 ? detailParts.join(' · ') : undefined,
      model: m.name,
      active,
    };
  });
  return items.sort((a, b) => Number(b.active) - Number(a.active) || a.model.localeCompare(b.model));
}
