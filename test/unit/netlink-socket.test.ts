// Request/reply matching of encap/netlink/socket.ts against a fake addon (no
// root, no kernel): ACK and error replies, the in-flight cap, dump
// serialization and DUMP_INTR retry, lost replies (ENOBUFS), close, timeout.
// Also the Semaphore behind the cap.

import { describe, expect, it } from 'vitest';
import { type NlMsg, decodeMessages, encodeAttrs, encodeMessage, nla } from '../../encap/netlink/codec.js';
import { NLMSG, NLM_F, RTM } from '../../encap/netlink/constants.js';
import type { NativeAddon } from '../../encap/netlink/native.js';
import { Semaphore } from '../../encap/netlink/semaphore.js';
import { NetlinkErrno, NetlinkSocket } from '../../encap/netlink/socket.js';

class FakeKernel {
  sent: NlMsg[] = [];
  sendCalls = 0;
  queue: Array<Buffer | Error> = [];
  events: string[] = [];
  readable: ((err: string | null) => void) | undefined;

  readonly addon: NativeAddon = {
    netlinkOpen: () => ({ fd: 100, portId: 4242 }),
    netlinkSend: (_fd, buf) => {
      this.sendCalls++;
      this.sent.push(...decodeMessages(buf));
      return buf.length;
    },
    netlinkRecv: () => {
      const next = this.queue.shift();
      if (next instanceof Error) throw next;
      return next ?? null;
    },
    watch: (_fd, cb) => {
      this.readable = cb;
      return {
        stop: () => this.events.push('stop'),
        ref: () => this.events.push('ref'),
        unref: () => this.events.push('unref'),
      };
    },
    tunOpen: () => {
      throw new Error('not here');
    },
    closeFd: () => this.events.push('closeFd'),
  };

  /** Queues datagrams and lets the socket read them, as a poll wakeup would. */
  deliver(...dgrams: Array<Buffer | Error>): void {
    this.queue.push(...dgrams);
    this.readable?.(null);
  }
}

function errorMsg(seq: number, errno: number, extack?: string): Buffer {
  const code = Buffer.alloc(4);
  code.writeInt32LE(-errno);
  const tlvs = extack ? encodeAttrs([nla.str(1, extack)]) : Buffer.alloc(0);
  const flags = NLM_F.CAPPED | (extack ? NLM_F.ACK_TLVS : 0);
  return encodeMessage({ type: NLMSG.ERROR, flags, seq, header: Buffer.concat([code, Buffer.alloc(16), tlvs]) });
}

const part = (seq: number, flags: number = NLM_F.MULTI) => encodeMessage({ type: RTM.NEWLINK, flags, seq, header: Buffer.alloc(16) });
const done = (seq: number, flags: number = NLM_F.MULTI) => encodeMessage({ type: NLMSG.DONE, flags, seq, header: Buffer.alloc(4) });
const req = { type: RTM.NEWLINK, header: Buffer.alloc(16) };
/** Until after the socket's coalesced flush (it runs in a later setImmediate than requests made now). */
const tick = async () => {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
};

function setup(opts = {}) {
  const k = new FakeKernel();
  return { k, s: NetlinkSocket.open(k.addon, -1, opts) };
}

describe('NetlinkSocket', () => {
  it('resolves on the ACK with the replies before it, and sends REQUEST|ACK plus the caller’s flags', async () => {
    const { k, s } = setup();
    const p = s.request({ ...req, flags: NLM_F.CREATE | NLM_F.EXCL });
    await tick();
    const [sent] = k.sent;
    expect(sent!.flags).toBe(NLM_F.REQUEST | NLM_F.ACK | NLM_F.CREATE | NLM_F.EXCL);
    expect(sent!.pid).toBe(4242);
    k.deliver(Buffer.concat([part(sent!.seq, 0), errorMsg(sent!.seq, 0)]));
    expect(await p).toHaveLength(1);
  });

  it('rejects with errno and the kernel’s extended-ACK text', async () => {
    const { k, s } = setup();
    const p = s.request(req);
    await tick();
    k.deliver(errorMsg(k.sent[0]!.seq, 17, 'Route exists'));
    await expect(p).rejects.toEqual(new NetlinkErrno(17, 'Route exists'));
  });

  it('keeps at most maxInFlight requests outstanding and sends the rest as replies come', async () => {
    const { k, s } = setup({ maxInFlight: 64 });
    const all = Array.from({ length: 200 }, () => s.request(req));
    await tick();
    expect(k.sent).toHaveLength(64);
    expect(s.inFlight).toBe(64);
    for (let round = 0; round < 10 && k.sent.length > 0; round++) {
      const batch = k.sent.splice(0);
      k.deliver(...batch.map((m) => errorMsg(m.seq, 0)));
      await tick();
      expect(k.sent.length).toBeLessThanOrEqual(64);
    }
    await Promise.all(all);
    expect(s.inFlight).toBe(0);
  });

  it('sends the requests made in one turn in one sendmsg, and a dump on its own', async () => {
    const { k, s } = setup({ maxInFlight: 64 });
    const all = Array.from({ length: 40 }, () => s.request(req));
    await tick();
    expect(k.sent).toHaveLength(40);
    expect(k.sendCalls).toBe(1);
    const d = s.dump(req);
    await tick();
    expect(k.sendCalls).toBe(2);
    expect(k.sent.at(-1)!.flags & NLM_F.DUMP).toBe(NLM_F.DUMP);
    k.deliver(...k.sent.slice(0, 40).map((m) => errorMsg(m.seq, 0)), done(k.sent[40]!.seq));
    await Promise.all([...all, d]);
  });

  it('runs one dump at a time, and retries one that a concurrent change interrupted', async () => {
    const { k, s } = setup();
    const a = s.dump(req);
    const b = s.dump(req);
    await tick();
    expect(k.sent).toHaveLength(1);
    expect(k.sent[0]!.flags).toBe(NLM_F.REQUEST | NLM_F.DUMP);
    const first = k.sent.shift()!.seq;
    k.deliver(Buffer.concat([part(first, NLM_F.MULTI | NLM_F.DUMP_INTR), done(first)]));
    await tick();
    const retry = k.sent.shift()!.seq;
    k.deliver(Buffer.concat([part(retry), part(retry), done(retry)]));
    expect(await a).toHaveLength(2);
    await tick();
    const second = k.sent.shift()!.seq;
    k.deliver(done(second));
    expect(await b).toEqual([]);
  });

  it('fails every waiter when the kernel dropped replies (ENOBUFS), and keeps working', async () => {
    const { k, s } = setup();
    const ps = [s.request(req), s.request(req)];
    await tick();
    k.deliver(Object.assign(new Error('recv'), { errno: 105, code: 'ENOBUFS' }));
    for (const p of ps) await expect(p).rejects.toMatchObject({ errno: 105 });
    const next = s.request(req);
    await tick();
    k.deliver(errorMsg(k.sent.at(-1)!.seq, 0));
    await expect(next).resolves.toEqual([]);
  });

  it('refs the poll only while requests wait, and stops it before closing the fd', async () => {
    const { k, s } = setup();
    expect(k.events).toEqual(['unref']);
    const p = s.request(req);
    await tick();
    expect(k.events).toEqual(['unref', 'ref']);
    s.close();
    await expect(p).rejects.toMatchObject({ errno: 9 });
    expect(k.events.slice(-2)).toEqual(['stop', 'closeFd']);
    await expect(s.request(req)).rejects.toMatchObject({ errno: 9 });
  });

  it('a batch goes out without ACK flags, closed by one acknowledged NOOP, in few sendmsg calls', async () => {
    const { k, s } = setup();
    const p = s.requestBatch(Array.from({ length: 3000 }, () => ({ ...req, flags: NLM_F.CREATE | NLM_F.REPLACE })));
    await tick();
    expect(k.sent).toHaveLength(2048 + 1); // the first segment and its closing NOOP
    expect(k.sendCalls).toBeLessThanOrEqual(4);
    const writes = k.sent.slice(0, 2048);
    for (const m of writes) expect(m.flags).toBe(NLM_F.REQUEST | NLM_F.CREATE | NLM_F.REPLACE);
    expect(new Set(writes.map((m) => m.seq)).size).toBe(2048);
    const closing = k.sent[2048]!;
    expect(closing.type).toBe(NLMSG.NOOP);
    expect(closing.flags).toBe(NLM_F.REQUEST | NLM_F.ACK);
    // Two writes fail; their errors arrive before the closing ACK, as the kernel orders them.
    k.deliver(errorMsg(writes[5]!.seq, 17, 'File exists'), errorMsg(writes[2047]!.seq, 19), errorMsg(closing.seq, 0));
    await tick();
    const second = k.sent.slice(2049);
    expect(second).toHaveLength(3000 - 2048 + 1);
    k.deliver(errorMsg(second[0]!.seq, 3), errorMsg(second.at(-1)!.seq, 0));
    const outcomes = await p;
    expect(outcomes).toHaveLength(3000);
    const failed = outcomes.flatMap((o, i) => (o ? [[i, (o as NetlinkErrno).errno]] : []));
    expect(failed).toEqual([[5, 17], [2047, 19], [2048, 3]]);
    expect((outcomes[5] as NetlinkErrno).extack).toBe('File exists');
  });

  it('a batch whose replies are lost (ENOBUFS) reports every outcome not known as failed', async () => {
    const { k, s } = setup();
    const p = s.requestBatch(Array.from({ length: 10 }, () => req));
    await tick();
    k.deliver(errorMsg(k.sent[1]!.seq, 22), Object.assign(new Error('ENOBUFS'), { errno: 105 }));
    const outcomes = await p;
    expect((outcomes[1] as NetlinkErrno).errno).toBe(22);
    expect(outcomes.every((o) => o instanceof NetlinkErrno)).toBe(true);
    expect((outcomes[0] as NetlinkErrno).errno).toBe(105);
    // The socket still works afterwards.
    const q = s.request(req);
    await tick();
    k.deliver(errorMsg(k.sent.at(-1)!.seq, 0));
    await expect(q).resolves.toEqual([]);
  });

  it('an empty batch sends nothing; a closed socket fails a batch', async () => {
    const { k, s } = setup();
    expect(await s.requestBatch([])).toEqual([]);
    expect(k.sendCalls).toBe(0);
    s.close();
    const outcomes = await s.requestBatch([req, req]);
    expect(outcomes.map((o) => (o as NetlinkErrno).errno)).toEqual([9, 9]);
  });

  it('times out a request the kernel never answers, and ignores the late reply', async () => {
    const { k, s } = setup({ timeoutMs: 20 });
    const p = s.request(req);
    await expect(p).rejects.toMatchObject({ errno: 110 });
    k.deliver(errorMsg(k.sent[0]!.seq, 0)); // no waiter any more: dropped
    expect(s.inFlight).toBe(0);
  });
});

describe('Semaphore', () => {
  it('admits max holders and hands slots over in FIFO order', async () => {
    const sem = new Semaphore(2);
    const order: number[] = [];
    await sem.acquire();
    await sem.acquire();
    const waiting = [1, 2, 3].map((n) => sem.acquire().then(() => order.push(n)));
    expect(sem.waiting).toBe(3);
    sem.release();
    sem.release();
    sem.release();
    await Promise.all(waiting);
    expect(order).toEqual([1, 2, 3]);
    expect(sem.inUse).toBe(2);
  });

  it('releases on failure in run()', async () => {
    const sem = new Semaphore(1);
    await expect(sem.run(() => Promise.reject(new Error('x')))).rejects.toThrow('x');
    expect(sem.inUse).toBe(0);
    expect(() => new Semaphore(0)).toThrow(RangeError);
  });
});
