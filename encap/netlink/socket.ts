// One rtnetlink socket (possibly in another netns) with request/reply
// matching: a sequence number per request, replies collected until the ACK
// (NLMSG_ERROR 0) or, for dumps, NLMSG_DONE. Sends are synchronous (the
// kernel handles rtnetlink inside sendmsg), replies arrive through a uv_poll
// watcher on the Node loop. Guards against the failure modes that crash naive
// netlink clients: in-flight requests are capped (replies never overflow the
// receive buffer), dumps are serialized (the kernel allows one per socket and
// answers EBUSY to a second), an interrupted dump is retried, and a lost-reply
// condition (ENOBUFS) fails the pending requests instead of hanging them.
//
// Requests are coalesced: those made in one turn of the event loop go to the
// kernel in one sendmsg (rtnetlink processes each message of a datagram in
// turn and ACKs each one separately, a failure included). A burst of replies
// handled in one poll wakeup thus refills the pipeline with one syscall
// instead of one per request, which is what makes weft's bulk programming as
// fast as `ip -batch`. Dumps are sent alone: the kernel answers a dump in
// several datagrams of its own.

import { type Attr, type NlMsg, decodeError, decodeMessages, encodeMessage } from './codec.js';
import { NLMSG, NLM_F } from './constants.js';
import type { NativeAddon, NativeWatcher } from './native.js';
import { Semaphore } from './semaphore.js';

/** A kernel refusal, before the wrapper names the object it was about. */
export class NetlinkErrno extends Error {
  constructor(
    readonly errno: number,
    readonly extack?: string,
  ) {
    super(`netlink errno ${errno}${extack ? `: ${extack}` : ''}`);
    this.name = 'NetlinkErrno';
  }
}

export interface SocketOptions {
  /** Default 64. */
  maxInFlight?: number;
  /** SO_RCVBUF in bytes; default 8 MiB. */
  rcvbuf?: number;
  /** Backstop for a reply that never comes; default 30 s. */
  timeoutMs?: number;
}

export interface Request {
  type: number;
  /** Extra NLM_F_* flags (CREATE, EXCL, REPLACE, APPEND, ...). */
  flags?: number;
  header: Buffer;
  attrs?: Attr[];
}

interface Pending {
  parts: NlMsg[];
  interrupted: boolean;
  resolve(r: { parts: NlMsg[]; interrupted: boolean }): void;
  reject(e: Error): void;
  /** performance.now() after which the request fails with ETIMEDOUT. */
  deadline: number;
}

const MAX_DATAGRAMS_PER_WAKEUP = 256; // then yield to the loop; the poll is level-triggered
/** Bytes per coalesced sendmsg; far below what the kernel accepts, far above 64 requests. */
const MAX_BATCH_BYTES = 64 * 1024;
const DUMP_ATTEMPTS = 5;
const ETIMEDOUT = 110;
const EBADF = 9;
const ENOBUFS = 105;

export class NetlinkSocket {
  private readonly pending = new Map<number, Pending>();
  private readonly slots: Semaphore;
  private readonly dumps = new Semaphore(1);
  private readonly watcher: NativeWatcher;
  private readonly timeoutMs: number;
  private seq = Math.floor(Math.random() * 0x7fffffff) + 1;
  private closed = false;
  /** Encoded requests waiting for the next flush, with their sequence numbers. */
  private outbox: { seq: number; buf: Buffer }[] = [];
  private flushScheduled = false;
  /** One timer sweeps for overdue requests while any wait; a timer per request costs more than the request. */
  private sweeper: NodeJS.Timeout | undefined;

  private constructor(
    private readonly addon: NativeAddon,
    private readonly fd: number,
    readonly portId: number,
    opts: SocketOptions,
  ) {
    this.slots = new Semaphore(opts.maxInFlight ?? 64);
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.watcher = addon.watch(fd, (err) => this.onReadable(err));
    // An idle socket must not keep the process alive.
    this.watcher.unref();
  }

  /** nsFd < 0: the caller's own namespace. Throws the addon's errno error. */
  static open(addon: NativeAddon, nsFd: number, opts: SocketOptions = {}): NetlinkSocket {
    const { fd, portId } = addon.netlinkOpen(nsFd, opts.rcvbuf ?? 8 * 1024 * 1024);
    try {
      return new NetlinkSocket(addon, fd, portId, opts);
    } catch (e) {
      addon.closeFd(fd);
      throw e;
    }
  }

  get inFlight(): number {
    return this.slots.inUse;
  }

  /** A request the kernel ACKs; resolves with any reply messages before the ACK. */
  async request(req: Request): Promise<NlMsg[]> {
    return (await this.slots.run(() => this.send(req, NLM_F.REQUEST | NLM_F.ACK | (req.flags ?? 0)))).parts;
  }

  /** A dump: all objects of a kind. One at a time per socket; retried if a concurrent change interrupted it. */
  dump(req: Request): Promise<NlMsg[]> {
    return this.dumps.run(async () => {
      for (let attempt = 1; ; attempt++) {
        const r = await this.slots.run(() => this.send(req, NLM_F.REQUEST | NLM_F.DUMP | (req.flags ?? 0)));
        if (!r.interrupted || attempt >= DUMP_ATTEMPTS) return r.parts;
      }
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watcher.stop(); // before the fd goes: the poll must not watch a reused fd number
    this.addon.closeFd(this.fd);
    this.failAll(new NetlinkErrno(EBADF, 'netlink socket closed'));
  }

  private nextSeq(): number {
    do {
      this.seq = this.seq >= 0xffffffff ? 1 : this.seq + 1;
    } while (this.pending.has(this.seq));
    return this.seq;
  }

  private send(req: Request, flags: number): Promise<{ parts: NlMsg[]; interrupted: boolean }> {
    if (this.closed) return Promise.reject(new NetlinkErrno(EBADF, 'netlink socket closed'));
    const seq = this.nextSeq();
    const buf = encodeMessage({ type: req.type, flags, seq, pid: this.portId, header: req.header, attrs: req.attrs ?? [] });
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { parts: [], interrupted: false, resolve, reject, deadline: performance.now() + this.timeoutMs });
      if (this.pending.size === 1) {
        this.watcher.ref();
        this.startSweeper();
      }
      if (flags & NLM_F.DUMP) {
        this.transmit([{ seq, buf }]);
        return;
      }
      this.outbox.push({ seq, buf });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        // After the poll phase: every request that replies handled in this wakeup released goes out together.
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const queued = this.outbox;
    this.outbox = [];
    for (let i = 0; i < queued.length; ) {
      let bytes = 0;
      let j = i;
      while (j < queued.length && (j === i || bytes + queued[j]!.buf.length <= MAX_BATCH_BYTES)) bytes += queued[j++]!.buf.length;
      this.transmit(queued.slice(i, j));
      i = j;
    }
  }

  /** One sendmsg for these requests; if it fails, each of them fails with its error. */
  private transmit(batch: readonly { seq: number; buf: Buffer }[]): void {
    if (this.closed) return; // close() already failed them
    try {
      this.addon.netlinkSend(this.fd, batch.length === 1 ? batch[0]!.buf : Buffer.concat(batch.map((b) => b.buf)));
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      for (const { seq } of batch) {
        const p = this.pending.get(seq);
        this.settle(seq);
        p?.reject(err);
      }
    }
  }

  private startSweeper(): void {
    if (this.sweeper !== undefined) return;
    const every = Math.max(10, Math.min(1000, this.timeoutMs / 4));
    this.sweeper = setInterval(() => {
      const now = performance.now();
      for (const [seq, p] of [...this.pending]) {
        if (p.deadline > now) continue;
        this.settle(seq);
        p.reject(new NetlinkErrno(ETIMEDOUT, `no reply from the kernel within ${this.timeoutMs} ms`));
      }
    }, every);
    this.sweeper.unref();
  }

  private settle(seq: number): void {
    if (!this.pending.delete(seq)) return;
    if (this.pending.size === 0) {
      clearInterval(this.sweeper);
      this.sweeper = undefined;
      if (!this.closed) this.watcher.unref();
    }
  }

  private failAll(err: Error): void {
    for (const [seq, p] of [...this.pending]) {
      this.settle(seq);
      p.reject(err);
    }
  }

  private onReadable(pollErr: string | null): void {
    try {
      this.drain(pollErr);
    } catch (e) {
      // A decoding bug must not leave callers waiting (nor throw into the
      // native poll callback): whatever was pending fails with it.
      this.failAll(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private drain(pollErr: string | null): void {
    if (this.closed) return;
    if (pollErr) {
      this.failAll(new Error(`netlink socket poll failed: ${pollErr}`));
      return;
    }
    for (let i = 0; i < MAX_DATAGRAMS_PER_WAKEUP && !this.closed; i++) {
      let dgram: Buffer | null;
      try {
        dgram = this.addon.netlinkRecv(this.fd);
      } catch (e) {
        // ENOBUFS: the kernel dropped replies; we cannot know whose, so every
        // waiter fails now (callers retry) rather than waits for the timeout.
        const errno = (e as NodeJS.ErrnoException).errno;
        if (errno !== ENOBUFS) throw e;
        this.failAll(new NetlinkErrno(ENOBUFS, 'receive buffer overflowed, replies lost'));
        continue;
      }
      if (dgram === null) return;
      for (const msg of decodeMessages(dgram)) this.dispatch(msg);
    }
  }

  private dispatch(msg: NlMsg): void {
    const p = this.pending.get(msg.seq);
    if (!p) return; // multicast, or the reply to a request that timed out
    if (msg.flags & NLM_F.DUMP_INTR) p.interrupted = true;
    if (msg.type === NLMSG.ERROR || msg.type === NLMSG.DONE) {
      const { errno, extack } = decodeError(msg);
      this.settle(msg.seq);
      if (errno === 0) p.resolve({ parts: p.parts, interrupted: p.interrupted });
      else p.reject(new NetlinkErrno(errno, extack));
      return;
    }
    if (msg.type !== NLMSG.NOOP && msg.type !== NLMSG.OVERRUN) p.parts.push(msg);
  }
}
