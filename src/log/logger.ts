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

export function createLogger(level: LogLevel, format: LogFormat): Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(
      winston.format.timestamp(),
      winston.format.errors({ stack: false }),
      format === 'json' ? winston.format.json() : textFormat,
    ),
    // stderr for everything: stdout stays free for command output.
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });
}

/** A logger that drops everything, for library use and unit tests. */
export function silentLogger(): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console({ silent: true })] });
}
