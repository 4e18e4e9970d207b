/** Paths for tests compiled to `out/test/` (two levels below the extension's root). */
import * as path from 'node:path';

export const EXTENSION_ROOT = path.resolve(__dirname, '..', '..');
export const REPO_ROOT = path.resolve(EXTENSION_ROOT, '..', '..');
