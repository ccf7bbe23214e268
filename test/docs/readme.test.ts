// The README's architecture must match the tree: every folder of src/ is
// listed there with its concern, and nothing that is not a folder of src/.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '..', '..', '..');

describe('README architecture', () => {
  it('lists exactly the folders of src/', () => {
    const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Architecture'), readme.indexOf('**A request from the socket down.**'));
    assert.ok(section.length > 0, 'the architecture section and its walk-through are there');
    const listed = [...section.matchAll(/^ {3}src\/([a-z_]+)\/ /gm)].map((m) => m[1]).sort();
    const folders = fs
      .readdirSync(path.join(REPO, 'src'), { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort();
    assert.deepEqual(listed, folders);
  });
});
