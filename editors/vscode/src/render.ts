/**
 * Markdown for command results shown in a panel (model status, throughput, doctor, ...).
 * Known shapes get a table; anything else is shown as JSON, so a new server field is never
 * lost. Pure (no `vscode` import).
 */

import type { Metrics } from './protocol';
import { formatBytes, formatParameters, formatRate } from './status';

type Json = unknown;

function isObject(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function cell(v: Json): string {
  if (v === null || v === undefined || v === '') return '–';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(1);
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function jsonBlock(value: Json): string {
  return '```json\n' + JSON.stringify(value, null, 2) + '\n```\n';
}

/** One line under a generated text: `212 tokens · 4.1 s · 51.7 tok/s · qwen2.5-coder:1.5b`. */
export function metricsLine(m: Metrics | null | undefined): string {
  if (!m) return '';
  const parts: string[] = [];
  if (typeof m.tokensGenerated === 'number') parts.push(`${m.tokensGenerated} tokens`);
  if (typeof m.latencyMs === 'number') parts.push(`${(m.latencyMs / 1000).toFixed(1)} s`);
  const rate = formatRate(m.tokensPerSecond);
  if (rate) parts.push(rate);
  if (m.model) parts.push(m.model);
  return parts.join(' · ');
}

/** `aethel.modelStatus`: `available`, `host`, `engine`, `version`, `activeModel`, `models`, `running`, `error`. */
export function modelStatusMarkdown(s: Json): string {
  if (!isObject(s)) return '# Aethel model status\n\n' + jsonBlock(s);
  const lines = ['# Aethel model status', ''];
  const ok = s['available'] === true;
  lines.push(`**${ok ? 'Available' : 'Not available'}** — engine \`${cell(s['engine'])}\` at \`${cell(s['host'])}\`` +
    (s['version'] ? ` (version ${cell(s['version'])})` : ''));
  if (s['activeModel']) lines.push('', `Active model: \`${cell(s['activeModel'])}\``);
  if (typeof s['error'] === 'string' && s['error'] !== '') lines.push('', `> ${s['error']}`);
  const models = Array.isArray(s['models']) ? s['models'] : [];
  if (models.length > 0) {
    lines.push('', '## Installed models', '', '| model | parameters | quantization | size | context | capabilities |', '|---|---|---|---|---|---|');
    for (const m of models) {
      if (!isObject(m)) continue;
      const caps = Array.isArray(m['capabilities']) ? m['capabilities'].join(', ') : '';
      lines.push(
        `| \`${cell(m['name'])}\` | ${cell(formatParameters(num(m['parameters'])))} | ${cell(m['quantization'])} | ` +
          `${cell(formatBytes(num(m['sizeBytes'])))} | ${cell(m['contextLength'])} | ${cell(caps)} |`,
      );
    }
  }
  const running = Array.isArray(s['running']) ? s['running'] : [];
  if (running.length > 0) {
    lines.push('', '## Loaded in memory', '', '| model | size | VRAM | until |', '|---|---|---|---|');
    for (const r of running) {
      if (!isObject(r)) continue;
      lines.push(`| \`${cell(r['name'])}\` | ${cell(formatBytes(num(r['sizeBytes'])))} | ${cell(formatBytes(num(r['sizeVram'])))} | ${cell(r['expiresAt'])} |`);
    }
  }
  return lines.join('\n') + '\n';
}

function num(v: Json): number | undefined {
  return typeof v === 'number' ? v : undefined;
}

/** `aethel.throughput`: `{last: Metrics|null, models: {name: {...}}}`. */
export function throughputMarkdown(t: Json): string {
  if (!isObject(t)) return '# Aethel throughput\n\n' + jsonBlock(t);
  const lines = ['# Aethel throughput', ''];
  const last = t['last'];
  lines.push(isObject(last) ? `Last generation: ${metricsLine(last) || '–'}` : 'No generation yet.');
  const models = isObject(t['models']) ? t['models'] : {};
  const names = Object.keys(models);
  if (names.length > 0) {
    lines.push(
      '',
      '| model | requests | errors | cancelled | tokens | tok/s | TTFT p50 (ms) | TTFT p95 (ms) |',
      '|---|---|---|---|---|---|---|---|',
    );
    for (const name of names) {
      const m = models[name];
      if (!isObject(m)) continue;
      lines.push(
        `| \`${cell(name)}\` | ${cell(m['requests'])} | ${cell(m['errors'])} | ${cell(m['cancelled'])} | ${cell(m['tokensGenerated'])} | ` +
          `${cell(m['tokensPerSecond'])} | ${cell(m['timeToFirstTokenMsP50'])} | ${cell(m['timeToFirstTokenMsP95'])} |`,
      );
    }
  }
  return lines.join('\n') + '\n';
}

/** Any other result: its `text`/`markdown`/`report` string if it has one, plus the JSON. */
export function genericResultMarkdown(title: string, value: Json): string {
  const head = `# ${title}\n\n`;
  if (typeof value === 'string') return head + value + '\n';
  if (isObject(value)) {
    for (const key of ['markdown', 'text', 'report']) {
      const v = value[key];
      if (typeof v === 'string' && v.trim() !== '') {
        const rest = { ...value };
        delete rest[key];
        return head + v + '\n\n<details><summary>Details</summary>\n\n' + jsonBlock(rest) + '\n</details>\n';
      }
    }
  }
  return head + jsonBlock(value);
}

/** One candidate of `aethel.distillContract` (the pinned shape `C`). */
export interface DistillCandidate {
  model: string;
  provider: string;
  text: string;
  valid: boolean;
  score: number;
  reason: string;
  costUsd: number | null;
}

/** The result of `aethel.distillContract`: the best first, every candidate, and why. */
export interface DistillResult {
  best: DistillCandidate | null;
  candidates: DistillCandidate[];
  explanation: string;
}

export function isDistillResult(v: Json): v is DistillResult {
  return isObject(v) && Array.isArray(v.candidates) && typeof v.explanation === 'string';
}

/** Every candidate with its verdict (best first), the explanation, the chosen contract. */
export function distillMarkdown(result: DistillResult): string {
  const rows = result.candidates.map((c, i) => {
    const cost = typeof c.costUsd === 'number' ? ` · $${c.costUsd.toFixed(4)}` : '';
    const reason = c.reason.replace(/\|/g, '\\|').replace(/\n/g, ' ');
    return `| ${i + 1} | ${c.valid ? '✓ valid' : '✗ rejected'} | \`${c.model}\` (${c.provider}) | ${c.score}${cost} | ${reason} |`;
  });
  const out = [
    `# Best of ${result.candidates.length}: ${result.best?.valid ? `\`${result.best.model}\` chosen` : 'no valid candidate'}`,
    '',
    '| # | verdict | model | score | reason |',
    '|---|---|---|---|---|',
    ...rows,
    '',
    '## Why',
    '',
    ...result.explanation.split('\n').map((line) => `- ${line}`),
  ];
  if (result.best?.valid) out.push('', '## Chosen contract', '', '```aethel', result.best.text.trimEnd(), '```');
  return out.join('\n') + '\n';
}

/** Escape text for HTML (the fallback when the Markdown renderer is unavailable). */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}
