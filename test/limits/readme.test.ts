// The README's "Limits" table names every bound of src/limits.ts, with its value.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Limits } from '../../src/limits';

const REPO = path.resolve(__dirname, '..', '..', '..');

/** How the table writes a byte count or a count: "4 MiB", "64 KiB", "8 MiB - 64 KiB", "1,000,000". */
function written(n: number): string[] {
  const KiB = 1024;
  const MiB = 1024 * KiB;
  const out = [n.toLocaleString('en-US'), String(n)];
  if (n % MiB === 0) out.push(`${n / MiB} MiB`);
  else if (n % KiB === 0 && n > MiB) out.push(`${Math.ceil(n / MiB)} MiB - ${(Math.ceil(n / MiB) * MiB - n) / KiB} KiB`);
  else if (n % KiB === 0) out.push(`${n / KiB} KiB`);
  return out;
}

describe('README limits table', () => {
  it('lists every limit of src/limits.ts with its value', () => {
    const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Limits'), readme.indexOf('## Layout'));
    assert.ok(section.length > 100, 'the README has a Limits section');
    for (const [key, value] of Object.entries(Limits)) {
      const row = section.split('\n').find((l) => l.includes(`| \`${key}\` |`));
      assert.ok(row, `no row for ${key}`);
      const berth = row.split('|')[3] ?? '';
      assert.ok(
        written(value).some((w) => berth.trim().startsWith(w)),
        `${key}: README says "${berth.trim()}", src/limits.ts says ${value}`,
      );
    }
  });
});
