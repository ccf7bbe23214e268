// Structured logging with winston. One process-wide logger; modules take a
// child with their component name so every line says where it came from.
import * as winston from 'winston';

export type LogFormat = 'text' | 'json';
export type LogLevel = 'error' | 'warn' | 'info' | 'debug';
export type Logger = winston.Logger;

const textFormat = winston.format.printf((info) => {
  const { level, message, timestamp, component, ...rest } = info as winston.Logform.TransformableInfo & {
    timestamp?: string;
    component?: string;
  };
  const fields = Object.entries(rest)
    .filter(([k]) => typeof k === 'string')
    .map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v)}`)
    .join(' ');
  const comp = component ? ` [${component}]` : '';
  return `${timestamp ?? ''} ${level.toUpperCase()}${comp} ${String(message)}${fields ? ' ' + fields : ''}`;
});

const LEVELS: LogLevel[] = ['error', 'warn', 'info', 'debug'];

/**
 * Whether `logger` (or a child of it) writes lines of `level`: the logger's
 * level against the line's. winston's isLevelEnabled() also walks the
 * transports (building their list each time) for a level of their own,
 * which berth's transports never have; this is asked on every CRI call.
 */
export function levelEnabled(logger: Logger, level: LogLevel): boolean {
  const line = logger.levels[level];
  const configured = logger.levels[logger.level];
  return line !== undefined && configured !== undefined && line <= configured;
}

export function createLogger(level: LogLevel, format: LogFormat): Logger {
  const logger = winston.createLogger({
    level,
    format: winston.format.combine(
      winston.format.timestamp(),
      winston.format.errors({ stack: false }),
      format === 'json' ? winston.format.json() : textFormat,
    ),
    // stderr for everything: stdout stays free for command output.
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });
  // winston formats every line (timestamp, fields as JSON) before its transport
  // drops those below the level; a line below the level returns at once
  // instead (children inherit these methods).
  for (const l of LEVELS) {
    // Called on the logger or a child of it: the child's write adds its fields.
    const write = logger[l] as unknown as (this: Logger, ...args: unknown[]) => Logger;
    const gated = function (this: Logger | undefined, ...args: unknown[]): Logger {
      const self = this ?? logger;
      if (!levelEnabled(self, l)) return self;
      return write.apply(self, args);
    };
    logger[l] = gated as unknown as winston.LeveledLogMethod;
  }
  return logger;
}

/** A logger that drops everything, for library use and unit tests. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
