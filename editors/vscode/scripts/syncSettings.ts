/**
 * `npm run sync-settings`: rewrite package.json's `contributes.configuration.properties`
 * from docs/configuration.md (the server's settings reference). Run it after a setting is
 * added to the server; `test/manifest.test.ts` fails until you do.
 */

import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildConfigurationProperties } from '../src/settingsSchema';

const root = path.resolve(__dirname, '..', '..'); // out/scripts -> editors/vscode
const repo = path.resolve(root, '..', '..');
const docs = fs.readFileSync(path.join(repo, 'docs', 'configuration.md'), 'utf8');
const pkgPath = path.join(root, 'package.json');
const pkg = JSON.parse(fs.readFileSync(pkgPath, 'utf8')) as { contributes: { configuration: { properties: unknown } } };
pkg.contributes.configuration.properties = buildConfigurationProperties(docs);
fs.writeFileSync(pkgPath, JSON.stringify(pkg, null, 2) + '\n');
console.log(`package.json: ${Object.keys(pkg.contributes.configuration.properties as object).length} settings written`);
