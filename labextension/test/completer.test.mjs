// The inline completion provider's pure parts: the request built around the cursor (prefix,
// suffix, language, path, preceding code cells within the budget) and the NDJSON reader that
// must give whole lines however the bytes are chunked. Run with `npm test`.
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = await build({
  stdin: {
    contents: "export * from './src/completer/request';\nexport * from './src/completer/ndjson';",
    resolveDir: root,
    loader: 'ts'
  },
  bundle: true,
  format: 'esm',
  platform: 'browser',
  write: false,
  logLevel: 'silent'
});
const m = await import(`data:text/javascript;base64,${Buffer.from(bundle.outputFiles[0].text).toString('base64')}`);

const cell = (id, type, source) => ({ model: { id, type, sharedModel: { getSource: () => source } } });
const notebook = (cells, active) => ({ id: 'nb-1', context: { path: 'work/a.ipynb' }, content: { widgets: cells, activeCellIndex: active } });

test('a notebook request: text around the cursor, language, path, code cells above', () => {
  const widget = notebook([cell('c0', 'code', 'import math'), cell('c1', 'markdown', '# Notes'), cell('c2', 'code', ''), cell('c3', 'code', 'x')], 3);
  const body = m.buildRequest({ text: 'def f(é):\n    return\n', offset: 20, mimeType: 'text/x-ipython' }, widget, { model: 'coder', maxTokens: 40 });
  assert.equal(body.prefix, 'def f(é):\n    return');
  assert.equal(body.suffix, '\n');
  assert.equal(body.language, 'python');
  assert.equal(body.path, 'work/a.ipynb');
  assert.equal(body.editorId, 'nb-1:c3');
  assert.deepEqual(body.cells, ['import math']); // markdown and empty cells left out
  assert.equal(body.model, 'coder');
  assert.equal(body.maxTokens, 40);
  assert.equal(body.provider, undefined);
});

test('offsets count code points, not UTF-16 units', () => {
  const body = m.buildRequest({ text: 'a = "😀"\nb', offset: 8, mimeType: 'text/x-python' }, { id: 'ed' });
  assert.equal(body.prefix, 'a = "😀"\n');
  assert.equal(body.suffix, 'b');
  assert.equal(body.editorId, 'ed');
  assert.equal(body.cells, undefined);
});

test('preceding cells keep the nearest within the budget; an oversized nearest cell keeps its end', () => {
  const big = 'y'.repeat(m.CELLS_BUDGET_CHARS - 10);
  const widget = notebook([cell('a', 'code', 'far = 1'), cell('b', 'code', big), cell('c', 'code', 'near = 2'), cell('d', 'code', '')], 3);
  assert.deepEqual(m.precedingCells(widget), [big, 'near = 2']);
  const huge = 'z'.repeat(m.CELLS_BUDGET_CHARS + 50) + 'END';
  const cut = m.precedingCells(notebook([cell('a', 'code', huge), cell('b', 'code', '')], 1));
  assert.equal(cut.length, 1);
  assert.equal(cut[0].length, m.CELLS_BUDGET_CHARS);
  assert.ok(cut[0].endsWith('END'));
});

test('languages from MIME types', () => {
  assert.equal(m.languageOf('text/x-ipython'), 'python');
  assert.equal(m.languageOf('text/x-ipythongfm'), 'markdown');
  assert.equal(m.languageOf('text/typescript'), 'typescript');
  assert.equal(m.languageOf('text/x-sh'), 'sh');
  assert.equal(m.languageOf(''), 'text');
});

test('NDJSON lines come out whole however the bytes are split', async () => {
  const text = '{"type":"start","id":"cmp_1"}\n{"type":"delta","text":"é\\n"}\n{"type":"end","status":"COMPLETED"}';
  const bytes = new TextEncoder().encode(text);
  const body = new ReadableStream({
    start(controller) {
      for (let i = 0; i < bytes.length; i += 5) {
        controller.enqueue(bytes.slice(i, i + 5)); // splits lines and the two-byte é
      }
      controller.close();
    }
  });
  const lines = [];
  for await (const line of m.ndjsonLines(body)) {
    lines.push(line);
  }
  assert.deepEqual(lines, [{ type: 'start', id: 'cmp_1' }, { type: 'delta', text: 'é\n' }, { type: 'end', status: 'COMPLETED' }]);
});
