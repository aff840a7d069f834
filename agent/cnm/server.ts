// The Docker plugin's socket (`--cnm-socket`, default
// /run/docker/plugins/weft.sock): Docker's plugin HTTP protocol, every call a
// POST to /<Interface>.<Method> with a JSON body.
//
// Replies, as libnetwork's remote driver and plugin client read them:
//   - a method weft does not implement: 404 with Go's "404 page not found"
//     (libnetwork skips optional methods on exactly that text);
//   - a body that is not JSON, or too large: 400 with {"Err": …} (the plugin
//     client reads "Err" from any non-200 reply);
//   - a call that cannot be done: 200 with {"Err": …} from the NetworkDriver,
//     {"Error": …} from the IpamDriver (the two protocols differ here).
// The body guard and the socket handling are the agent API's (../api/server),
// so a huge body or a slow client costs only its own connection.

import { createServer, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { isWeftError } from '../../ipam/errors.js';
import { listenUnix, readBody } from '../api/server.js';
import { IPAM_DRIVER, NETWORK_DRIVER, PLUGIN_MEDIA_TYPE } from './protocol.js';
import type { Handlers } from './ipam-driver.js';

function send(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'content-type': PLUGIN_MEDIA_TYPE }).end(JSON.stringify(value) + '\n');
}

/** The reply field a failed call of this method carries its message in. */
export function errorField(method: string): 'Err' | 'Error' {
  return method.startsWith(`${IPAM_DRIVER}.`) ? 'Error' : 'Err';
}

export function pluginHandlers(...sets: Handlers[]): Handlers {
  return Object.assign({ 'Plugin.Activate': async () => ({ Implements: [NETWORK_DRIVER, IPAM_DRIVER] }) }, ...sets) as Handlers;
}

/** The request handler, separate from the socket so tests can serve it on any server. */
export function pluginRequestListener(handlers: Handlers, log: Logger): Parameters<typeof createServer>[1] {
  return (req, res) => {
    const method = (req.url ?? '/').split('?')[0]!.replace(/^\/+/, '');
    const handler = Object.hasOwn(handlers, method) ? handlers[method] : undefined;
    if (req.method !== 'POST' || handler === undefined) {
      req.resume();
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
      return;
    }
    readBody(req).then(
      (body) => {
        log.debug({ method, body }, 'Docker plugin call');
        return handler(body).then(
          (value) => send(res, 200, value ?? {}),
          (e: unknown) => {
            const message = (e as Error)?.message ?? String(e);
            if (!isWeftError(e) || e.code === 'INTERNAL') log.error({ err: (e as Error)?.stack ?? message, method }, 'Docker plugin call failed');
            else log.info({ method, err: message }, 'Docker plugin call refused');
            send(res, 200, { [errorField(method)]: message });
          },
        );
      },
      (e: unknown) => {
        log.warn({ method, err: (e as Error).message }, 'Docker plugin request unreadable');
        send(res, 400, { Err: (e as Error).message });
      },
    );
  };
}

export async function startPluginServer(socketPath: string, handlers: Handlers, log: Logger): Promise<{ server: Server; close(): Promise<void> }> {
  const server = createServer(pluginRequestListener(handlers, log));
  await listenUnix(server, socketPath, 'give this agent another --cnm-socket (or an empty one to turn the Docker plugin off)');
  log.info({ socket: socketPath }, 'Docker plugin listening');
  return {
    server,
    close: async () => {
      // listenUnix removes the socket on close (unless a newer agent replaced it): Docker finds plugins by
      // their socket, and one left behind would make dockerd wait 15 s on a dead plugin.
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
