// Waiting for a socket to be bound (UDP) or listening (TCP): the bind error,
// if any, rejects the promise, and on success the one-off error listener is
// removed again, so later errors reach the socket's own handler. The DNS
// server and the gossip transport each bind a UDP socket and a TCP server.

import type { EventEmitter } from 'node:events';

/** Runs `start` (which calls `done` once bound) and settles with its outcome. */
export function whenBound(socket: EventEmitter, start: (done: () => void) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    start(() => {
      socket.off('error', reject);
      resolve();
    });
  });
}
