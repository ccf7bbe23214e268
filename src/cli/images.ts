// `berth images import|export`: streams archives to and from berthd's admin
// endpoint. The CLI never opens berthd's stores itself.
import * as fs from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AdminClient } from '../admin/client';

export async function imagesCommand(args: string[], adminSocket: string, usage: string): Promise<number> {
  const client = new AdminClient(adminSocket);
  const sub = args[0];
  if (sub === 'import') {
    const file = args[1];
    if (!file || args.length > 2) {
      process.stderr.write(`berth: images import takes one FILE (or - for stdin)\n${usage}`);
      return 2;
    }
    const source: Readable = file === '-' ? process.stdin : fs.createReadStream(file);
    const result = await client.importArchive(source);
    for (const w of result.warnings) process.stderr.write(`berth: warning: ${w}\n`);
    for (const img of result.images) process.stdout.write(`imported ${img.id}${img.names.length ? ` ${img.names.join(' ')}` : ''}\n`);
    return 0;
  }
  if (sub === 'export') {
    let out: string | undefined;
    const refs: string[] = [];
    for (let i = 1; i < args.length; i++) {
      if (args[i] === '-o' || args[i] === '--output') out = args[++i];
      else if (args[i].startsWith('--output=')) out = args[i].slice('--output='.length);
      else refs.push(args[i]);
    }
    if (refs.length === 0) {
      process.stderr.write(`berth: images export needs at least one image\n${usage}`);
      return 2;
    }
    if ((out === undefined || out === '-') && process.stdout.isTTY) {
      process.stderr.write('berth: refusing to write an archive to a terminal; use -o FILE or redirect stdout\n');
      return 2;
    }
    const archive = await client.exportImages(refs);
    if (out === undefined || out === '-') {
      await pipeline(archive, process.stdout);
      return 0;
    }
    // Written aside and renamed once complete: a cut-off export never looks like an archive.
    const tmp = `${out}.partial-${process.pid}`;
    try {
      await pipeline(archive, fs.createWriteStream(tmp, { mode: 0o600 }));
      fs.renameSync(tmp, out);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    return 0;
  }
  process.stderr.write(`berth: unknown images command ${JSON.stringify(sub ?? '')}\n${usage}`);
  return 2;
}
