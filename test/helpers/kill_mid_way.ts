// Runs a node script that writes in a loop, and SIGKILLs it in the middle of
// its writes: the script prints a line once it is well under way.
import { spawn } from 'node:child_process';

export async function killMidWay(script: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.once('exit', r));
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  await new Promise((r) => setTimeout(r, 50));
  child.kill('SIGKILL');
  await exited;
}
