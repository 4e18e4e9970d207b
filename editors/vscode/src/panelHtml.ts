/**
 * The HTML shell of the explanation/result panel. The content is replaced by messages from
 * the extension (`{type: 'update', html, footer, streaming}`) so the page never reloads while
 * an explanation streams in. Strict CSP: only our nonce'd script runs, model output can't.
 * Pure (no `vscode` import).
 */

import { escapeHtml } from './render';

export interface PanelUpdate {
  type: 'update';
  html: string;
  footer: string;
  streaming: boolean;
  /** The tab is reused for each explanation: its heading follows. */
  title?: string;
}

export type PanelRequest = { type: 'stop' } | { type: 'copy' } | { type: 'openMarkdown' };

export function isPanelRequest(v: unknown): v is PanelRequest {
  if (typeof v !== 'object' || v === null) return false;
  const t = (v as { type?: unknown }).type;
  return t === 'stop' || t === 'copy' || t === 'openMarkdown';
}

export function panelHtml(opts: { cspSource: string; nonce: string; title: string }): string {
  const { cspSource, nonce } = opts;
  const title = escapeHtml(opts.title);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src ${cspSource} data:; style-src ${cspSource} 'unsafe-inline'; script-src 'nonce-${nonce}';">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>${title}</title>
<style>
  body { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); color: var(--vscode-foreground); padding: 0 1.2em 2em; line-height: 1.5; }
  header { position: sticky; top: 0; background: var(--vscode-editor-background); padding: .6em 0; display: flex; gap: .6em; align-items: center; border-bottom: 1px solid var(--vscode-panel-border); }
  header h1 { font-size: 1.1em; margin: 0; flex: 1; }
  button { background: var(--vscode-button-secondaryBackground); color: var(--vscode-button-secondaryForeground); border: none; padding: .25em .8em; cursor: pointer; }
  button:hover { background: var(--vscode-button-secondaryHoverBackground); }
  button[hidden] { display: none; }
  pre, code { font-family: var(--vscode-editor-font-family); }
  pre { background: var(--vscode-textCodeBlock-background); padding: .6em; overflow-x: auto; white-space: pre-wrap; }
  table { border-collapse: collapse; } th, td { border: 1px solid var(--vscode-panel-border); padding: .2em .5em; }
  footer { margin-top: 1.5em; color: var(--vscode-descriptionForeground); font-size: .9em; }
  .cursor::after { content: '▍'; animation: blink 1s steps(1) infinite; }
  @keyframes blink { 50% { opacity: 0; } }
</style>
</head>
<body>
<header><h1>${title}</h1>
  <button id="stop" title="Stop the generation">Stop</button>
  <button id="copy" title="Copy the Markdown">Copy</button>
  <button id="open" title="Open the Markdown in an editor">Open as Markdown</button>
</header>
<main id="content" class="cursor"><p><em>Waiting for the model…</em></p></main>
<footer id="footer"></footer>
<script nonce="${nonce}">
  const vscode = acquireVsCodeApi();
  const content = document.getElementById('content');
  const footer = document.getElementById('footer');
  const stop = document.getElementById('stop');
  const heading = document.querySelector('header h1');
  stop.addEventListener('click', () => vscode.postMessage({ type: 'stop' }));
  document.getElementById('copy').addEventListener('click', () => vscode.postMessage({ type: 'copy' }));
  document.getElementById('open').addEventListener('click', () => vscode.postMessage({ type: 'openMarkdown' }));
  window.addEventListener('message', (event) => {
    const m = event.data;
    if (!m || m.type !== 'update') return;
    const nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    content.innerHTML = m.html;
    content.classList.toggle('cursor', !!m.streaming);
    footer.textContent = m.footer || '';
    if (typeof m.title === 'string') heading.textContent = m.title;
    stop.hidden = !m.streaming;
    if (m.streaming && nearBottom) window.scrollTo(0, document.body.scrollHeight);
  });
</script>
</body>
</html>`;
}

/** A random nonce for the CSP (webviews need one per render). */
export function makeNonce(random: () => number = Math.random): string {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (let i = 0; i < 32; i++) out += chars.charAt(Math.floor(random() * chars.length));
  return out;
}
