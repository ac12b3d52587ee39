// Keep package-lock.json free of any URL: drop the `funding` links npm copies
// from package manifests (resolved URLs are already omitted by
// omit-lockfile-registry-resolved). Run after changing dependencies.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const path = resolve(dirname(fileURLToPath(import.meta.url)), '../package-lock.json');
const lock = JSON.parse(readFileSync(path, 'utf8'));
for (const entry of Object.values(lock.packages ?? {})) {
  delete entry.funding;
  if (typeof entry.resolved === 'string' && !entry.resolved.startsWith('https://registry.npmjs.org/')) {
    throw new Error(`non-registry URL in package-lock.json: ${entry.resolved}`);
  }
}
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
const urls = readFileSync(path, 'utf8').match(/https?:\/\/[^"]+/g) ?? [];
const foreign = urls.filter(u => !u.startsWith('https://registry.npmjs.org/'));
if (foreign.length) {
  throw new Error(`package-lock.json still holds URLs: ${foreign.slice(0, 5).join(', ')}`);
}
console.log('package-lock.json: no URLs other than the npm registry');
