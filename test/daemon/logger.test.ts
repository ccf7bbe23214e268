// The daemon logger: lines below the level cost nothing and write nothing;
// children keep their fields; a level raised at run time takes effect, also
// for levelEnabled().
import { strict as assert } from 'node:assert';
import { PassThrough } from 'node:stream';
import * as winston from 'winston';
import { createLogger, levelEnabled } from '../../src/log/logger';

describe('logger', function () {
  it('drops lines below its level before formatting, keeps children\'s fields, and follows a level change', () => {
    const logger = createLogger('info', 'json');
    const lines: string[] = [];
    const stream = new PassThrough();
    stream.on('data', (b: Buffer) => lines.push(...b.toString().split('\n').filter(Boolean)));
    logger.clear();
    logger.add(new winston.transports.Stream({ stream }));
    const child = logger.child({ component: 'unit' });
    let formatted = 0;
    const probe = { toJSON: () => (formatted++, 'probe') };
    child.debug('hidden', { probe });
    child.info('shown', { n: 1 });
    assert.equal(formatted, 0, 'a debug line at info level is never formatted');
    assert.equal(lines.length, 1);
    assert.deepEqual(
      (({ message, component, n, level }) => ({ message, component, n, level }))(JSON.parse(lines[0]) as Record<string, unknown>),
      { message: 'shown', component: 'unit', n: 1, level: 'info' },
    );
    assert.deepEqual([levelEnabled(child, 'info'), levelEnabled(child, 'debug')], [true, false]);
    logger.level = 'debug';
    assert.equal(levelEnabled(child, 'debug'), true, "a child follows its parent's level");
    child.debug('now shown');
    assert.equal(lines.length, 2);
    assert.equal((JSON.parse(lines[1]) as { component: string }).component, 'unit');
  });
});
