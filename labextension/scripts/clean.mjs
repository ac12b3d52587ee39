// Remove build products (TypeScript output, the prebuilt labextension, widget bundles).
import { rmSync, readdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
for (const path of ['lib', 'tsconfig.tsbuildinfo', '../polaris_jupyter/labextension']) {
  rmSync(resolve(root, path), { recursive: true, force: true });
}
const statics = resolve(root, '../polaris_jupyter/kernel/static');
try {
  for (const name of readdirSync(statics)) {
    if (/^(chat|progress)-widget\.(js|css)$/.test(name)) {
      rmSync(resolve(statics, name));
    }
  }
} catch {
  // nothing built yet
}
