// The few calls of the Docker Engine API the plugin needs to learn container
// names (`--docker-socket`, default /var/run/docker.sock): a JSON GET and the
// streamed /events. Behind an interface so the name watcher is unit-tested
// with a fake dockerd. Every call is bounded: a GET in time and size, the
// event stream line by line in size (a line is one event).

import { request } from 'node:http';
import { WeftError } from '../../ipam/errors.js';

export interface DockerEvent {
  readonly Type?: string;
  readonly Action?: string;
  readonly Actor?: { readonly ID?: string; readonly Attributes?: Readonly<Record<string, string>> };
}

export interface DockerApi {
  get(path: string): Promise<unknown>;
  /** Calls onEvent for each event until the stream ends (resolves) or fails (rejects); `onOpen` once it is streaming. */
  events(query: string, onEvent: (e: DockerEvent) => void, onOpen: () => void, signal: AbortSignal): Promise<void>;
}

const MAX_REPLY = 16 << 20;
const MAX_EVENT = 1 << 20;

export function dockerSocketApi(socketPath: string, timeoutMs = 10_000): DockerApi {
  return {
    get: (path) =>
      new Promise((resolve, reject) => {
        const req = request({ socketPath, path, method: 'GET', headers: { host: 'docker' }, timeout: timeoutMs }, (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_REPLY) req.destroy(new WeftError('UNAVAILABLE', `dockerd's reply to GET ${path} is larger than ${MAX_REPLY} bytes`));
            else chunks.push(c);
          });
          res.on('error', reject);
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode === 404) return resolve(undefined);
            if (res.statusCode !== 200) return reject(new WeftError('UNAVAILABLE', `dockerd answered GET ${path} with ${res.statusCode}: ${text.slice(0, 200)}`));
            try {
              resolve(JSON.parse(text) as unknown);
            } catch (e) {
              reject(new WeftError('UNAVAILABLE', `dockerd's reply to GET ${path} is not JSON: ${(e as Error).message}`));
            }
          });
        });
        req.on('timeout', () => req.destroy(new WeftError('UNAVAILABLE', `dockerd did not answer GET ${path} within ${timeoutMs} ms`)));
        req.on('error', reject);
        req.end();
      }),

    events: (query, onEvent, onOpen, signal) =>
      new Promise((resolve, reject) => {
        const req = request({ socketPath, path: `/events?${query}`, method: 'GET', headers: { host: 'docker' }, signal }, (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            return reject(new WeftError('UNAVAILABLE', `dockerd answered GET /events with ${res.statusCode}`));
          }
          onOpen();
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            buf += c;
            let nl: number;
            while ((nl = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, nl).trim();
              buf = buf.slice(nl + 1);
              if (line === '') continue;
              try {
                onEvent(JSON.parse(line) as DockerEvent);
              } catch {
                /* a line that is not an event is skipped, never fatal */
              }
            }
            if (buf.length > MAX_EVENT) req.destroy(new WeftError('UNAVAILABLE', `an event from dockerd is larger than ${MAX_EVENT} bytes`));
          });
          res.on('error', reject);
          res.on('end', () => resolve());
        });
        req.on('error', (e) => (signal.aborted ? resolve() : reject(e)));
        req.end();
      }),
  };
}
