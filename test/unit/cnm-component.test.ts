// The Docker plugin as a component: Docker's keys are runtime-managed from
// start (before the first sweep), the socket appears only once the node is
// ready, endpoint records are loaded from the state dir, the status section
// says what it serves, and stop removes the socket.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { CnmComponent } from '../../agent/cnm/index.js';
import type { ChangeListener } from '../../agent/core/node-state.js';
import { setup } from './support/attachment-fakes.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function fakeState() {
  let missing = ['subnet lease'];
  const listeners = new Set<ChangeListener>();
  const sections = new Map<string, () => unknown>();
  return {
    sections,
    notReady: () => missing,
    subscribe: (fn: ChangeListener) => {
      listeners.add(fn);
      return () => void listeners.delete(fn);
    },
    addStatus: (name: string, fn: () => unknown) => void sections.set(name, fn),
    becomeReady: () => {
      missing = [];
      // The component asks notReady() itself and reads nothing from the facts passed along.
      for (const fn of listeners) fn('ready', undefined as never);
    },
  };
}

describe('CnmComponent', () => {
  it('marks Docker keys runtime-managed at start, serves once ready, removes its socket on stop', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-cnm-c-'));
    dirs.push(dir);
    const { service } = await setup();
    const state = fakeState();
    const failures: unknown[] = [];
    const socketPath = join(dir, 'plugins', 'weft.sock');
    const c = new CnmComponent({ socketPath, stateDir: join(dir, 'state'), attachments: () => service, state, fail: (e) => failures.push(e), log: pino({ level: 'silent' }) });
    await c.start();
    expect(service.isRuntimeManaged({ containerId: 'docker-0123', ifname: 'eth0' })).toBe(true);
    expect(service.isRuntimeManaged({ containerId: 'pod-1', ifname: 'eth0' })).toBe(false);
    expect(existsSync(socketPath)).toBe(false);
    expect(state.sections.get('docker')?.()).toEqual({ socket: socketPath, serving: false, endpoints: 0 });
    state.becomeReady();
    const serving = (): boolean => (state.sections.get('docker')?.() as { serving: boolean }).serving;
    for (let i = 0; i < 300 && !serving(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(serving()).toBe(true);
    expect(existsSync(socketPath)).toBe(true);
    await c.stop();
    expect(existsSync(socketPath)).toBe(false);
    expect(failures).toEqual([]);
  });
});
