// Bundle the notebook widgets (anywidget ESM modules over the shared renderer)
// into polaris_jupyter/kernel/static/, which the wheel ships.
import { build } from 'esbuild';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const outdir = resolve(root, '../polaris_jupyter/kernel/static');
const production = !process.argv.includes('--dev');
mkdirSync(outdir, { recursive: true });

const common = {
  bundle: true,
  minify: production,
  sourcemap: false,
  target: ['es2020'],
  legalComments: 'none',
  logLevel: 'info',
  absWorkingDir: root
};

await Promise.all([
  build({ ...common, entryPoints: ['src/widget/index.ts'], format: 'esm', outfile: resolve(outdir, 'chat-widget.js') }),
  build({ ...common, entryPoints: ['src/widget/progress.ts'], format: 'esm', outfile: resolve(outdir, 'progress-widget.js') }),
  build({ ...common, entryPoints: ['style/widget.css'], outfile: resolve(outdir, 'chat-widget.css') }),
  build({ ...common, entryPoints: ['style/widget.css'], outfile: resolve(outdir, 'progress-widget.css') })
]);
