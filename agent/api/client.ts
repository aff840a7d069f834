// Client side of the agent's unix-socket API, for the CLI (and later the CNI
// relay's tests). Every call has a deadline: a hung agent must give a clear
// UNAVAILABLE error, never a hung command.

import { request } from 'node:http';
import { join } from 'node:path';
import { WeftError, type WeftErrorCode } from '../../ipam/errors.js';

export function socketPathOf(runDir: string): string {
  return join(runDir, 'weft.sock');
}

export function callAgent<T>(runDir: string, method: string, path: string, body?: unknown, timeoutMs = 5000): Promise<T> {
  const socketPath = socketPathOf(runDir);
  return new Promise<T>((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      { socketPath, method, path, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            return reject(new WeftError('INTERNAL', `agent at ${socketPath} sent a reply that is not JSON`));
          }
          const err = (parsed as { error?: { code: WeftErrorCode; message: string; details?: Record<string, unknown> } }).error;
          if (err !== undefined) return reject(new WeftError(err.code, err.message, err.details ?? {}));
          resolve(parsed as T);
        });
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) =>
      reject(new WeftError('UNAVAILABLE', `cannot reach the weft agent at ${socketPath}: ${e.message} (is \`weft agent --run-dir ${runDir}\` running?)`)),
    );
    req.end(payload);
  });
}
