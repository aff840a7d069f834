// The root pino logger (JSON lines on stderr, so stdout stays for command
// output) and one child per component, as operators grep by `component`.

import { pino, type Logger, type Level } from 'pino';
import { WeftError } from '../ipam/errors.js';

const LEVELS: readonly string[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export function createLogger(level: string): Logger {
  if (!LEVELS.includes(level)) {
    throw new WeftError('INVALID_ARGUMENT', `--log-level: "${level}" is not one of ${LEVELS.join(', ')}`, { flag: 'log-level' });
  }
  return pino({ level: level as Level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}

export function componentLogger(root: Logger, component: string): Logger {
  return root.child({ component });
}
