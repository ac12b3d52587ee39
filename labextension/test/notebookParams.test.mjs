// Unit tests of the parameters-cell reader behind "Run as background job…" (src/notebookParams.ts),
// run with `npm test` (node --test); bundled in memory with esbuild, like the renderer tests.
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const bundle = await build({
  entryPoints: [resolve(root, 'src/notebookParams.ts')],
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  write: false,
  logLevel: 'silent'
});
const p = await import(`data:text/javascript;base64,${Buffer.from(bundle.outputFiles[0].text).toString('base64')}`);

test('the first cell tagged parameters is found, its source joined', () => {
  const notebook = {
    cells: [
      { cell_type: 'markdown', source: ['# Report'], metadata: {} },
      { cell_type: 'code', source: ['n = 1\n', "city = 'Paris'"], metadata: { tags: ['setup', 'parameters'] } },
      { cell_type: 'code', source: 'x = 2', metadata: { tags: ['parameters'] } }
    ]
  };
  assert.equal(p.parametersCellSource(notebook), "n = 1\ncity = 'Paris'");
  assert.equal(p.parametersCellSource({ cells: [{ source: 'n = 1', metadata: {} }] }), null);
  assert.equal(p.parametersCellSource(null), null);
});

test('assignments become name / expression / JSON value / comment rows', () => {
  const source = [
    'import datetime',
    'n = 3  # how many',
    "city = 'Zürich'  # a '#' inside a comment",
    'ratio: float = 0.5',
    'tag = "a # not a comment"',
    'items = [1,',
    '         (2, 3)]  # continued',
    "opts = {'a': True, 'b': None}",
    'day = datetime.date.today()',
    'if n > 2:',
    '    hidden = 1',
    'n = 4',
    'x == 1'
  ].join('\n');
  const rows = p.parseParameters(source);
  assert.deepEqual(
    rows.map(r => [r.name, r.value, r.comment]),
    [
      ['city', 'Zürich', "a '#' inside a comment"],
      ['ratio', 0.5, ''],
      ['tag', 'a # not a comment', ''],
      ['items', [1, [2, 3]], 'continued'],
      ['opts', { a: true, b: null }, ''],
      ['day', undefined, ''],
      ['n', 4, '']
    ]
  );
  assert.equal(rows.find(r => r.name === 'day').expression, 'datetime.date.today()');
  assert.ok(!('value' in rows.find(r => r.name === 'day')));
});

test('Python literals read as JSON, anything else is refused', () => {
  const ok = text => {
    const result = p.parsePythonLiteral(text);
    assert.ok(result.ok, text);
    return result.value;
  };
  assert.equal(ok('-1_000'), -1000);
  assert.equal(ok('1e3'), 1000);
  assert.equal(ok('"""two\nlines"""'), 'two\nlines');
  assert.equal(ok("'it\\'s'"), "it's");
  assert.deepEqual(ok('()'), []);
  assert.deepEqual(ok('[1, 2,]'), [1, 2]);
  for (const bad of ['0x10', 'f"{x}"', 'np.array([1])', '{1: 2}', '[1, 2', 'inf', "'open"]) {
    assert.equal(p.parsePythonLiteral(bad).ok, false, bad);
  }
});

test('typed values: JSON, then a Python literal, else the text itself', () => {
  assert.equal(p.readInput('3'), 3);
  assert.equal(p.readInput('"3"'), '3');
  assert.equal(p.readInput("'Paris'"), 'Paris');
  assert.equal(p.readInput('True'), true);
  assert.equal(p.readInput('Paris'), 'Paris');
  assert.equal(p.readInput('2026-01-31'), '2026-01-31');
  assert.deepEqual(p.readInput('[1, "a"]'), [1, 'a']);
  assert.equal(p.initialInput({ name: 'city', expression: "'Paris'", value: 'Paris', comment: '' }), '"Paris"');
  assert.equal(p.initialInput({ name: 'day', expression: 'f()', comment: '' }), '');
});

test('parameter names are identifiers that are not keywords', () => {
  assert.equal(p.parameterNameError('n_2'), null);
  assert.match(p.parameterNameError('2n'), /not a valid parameter name/);
  assert.match(p.parameterNameError('class'), /Python keyword/);
});

test('the form becomes a run-notebook request: only changed parameters, checked fields', () => {
  const declared = p.parseParameters("n = 1\ncity = 'Paris'\nday = today()");
  const state = {
    values: { n: '3', city: '"Paris"', day: '' },
    extra: [{ name: 'extra', value: 'yes' }, { name: '', value: '' }],
    html: true,
    timeoutS: '30',
    maxAttempts: '2',
    cron: '',
    timezone: 'Europe/Paris',
    saveFirst: false
  };
  assert.deepEqual(p.jobRequest('reports/daily.ipynb', declared, state), {
    payload: { path: 'reports/daily.ipynb', outputs: ['ipynb', 'html'], parameters: { n: 3, extra: 'yes' }, timeoutS: 30 },
    options: { maxAttempts: 2 },
    cron: null,
    timezone: 'Europe/Paris'
  });
  const plain = p.jobRequest('a.ipynb', declared, { ...state, values: {}, extra: [], html: false, timeoutS: '', maxAttempts: '', cron: ' 0  6 * * * ' });
  assert.deepEqual(plain, { payload: { path: 'a.ipynb', outputs: ['ipynb'] }, options: {}, cron: '0 6 * * *', timezone: 'Europe/Paris' });
  const bad = changes => assert.throws(() => p.jobRequest('a.ipynb', declared, { ...state, ...changes }));
  bad({ timeoutS: '-1' });
  bad({ maxAttempts: '1.5' });
  bad({ maxAttempts: '0' });
  bad({ cron: '0 6 * *' });
  bad({ extra: [{ name: 'n', value: '4' }] });
  bad({ extra: [{ name: '', value: '4' }] });
  bad({ extra: [{ name: 'for', value: '4' }] });
  assert.throws(() => p.jobRequest('a.ipynb', declared, { ...state, cron: '0 6 * *' }), /5 fields/);
});
