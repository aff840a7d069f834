// One UDP request and its answer, from a fresh socket on loopback, so a late
// reply to an earlier request can never be taken for this one's; undefined
// when nothing comes back in time (a dropped query is an outcome tests check).

import { createSocket } from 'node:dgram';

export function udpQuery(port: number, q: Buffer, timeoutMs: number, host = '127.0.0.1'): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const c = createSocket('udp4');
    const t = setTimeout(() => {
      c.close();
      resolve(undefined);
    }, timeoutMs);
    c.on('message', (m) => {
      clearTimeout(t);
      c.close();
      resolve(m);
    });
    c.send(q, port, host);
  });
}
