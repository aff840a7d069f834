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
// instead of one per request. Dumps are sent alone: the kernel answers a dump
// in several datagrams of its own.
//
// Bulk writes (requestBatch) go further: the requests carry no NLM_F_ACK, so
// the kernel answers only those that fail, and one NLMSG_NOOP with NLM_F_ACK
// closes each segment. rtnetlink handles the messages of a socket in order,
// inside sendmsg, so when the closing ACK arrives every error of the segment
// has arrived before it. 3000 objects thus cost a few sendmsg and a few
// recvmsg instead of 3000 of each, and one promise instead of 3000.

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

/** The outcome of one request of a batch: undefined when the kernel accepted it. */
export type BatchOutcome = Error | undefined;

/** Requests between two closing ACKs: bounds the error replies that can queue up (each echoes its request). */
const BATCH_SEGMENT = 2048;

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
  /** The batch segment in flight, if any: error replies with a seq in [first, first + outcomes.length) are its. */
  private segment: { first: number; count: number; outcomes: BatchOutcome[]; offset: number } | undefined;
  /** Batches run one at a time (their seqs must be one contiguous range). */
  private readonly batches = new Semaphore(1);
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

  /**
   * Many independent requests (no replies wanted but errors), in order;
   * resolves with one outcome per request. If the socket fails mid-way (closed,
   * replies lost), the requests whose outcome is unknown carry that error.
   */
  requestBatch(reqs: readonly Request[]): Promise<BatchOutcome[]> {
    if (reqs.length === 0) return Promise.resolve([]);
    return this.batches.run(async () => {
      const outcomes: BatchOutcome[] = new Array<BatchOutcome>(reqs.length).fill(undefined);
      for (let offset = 0; offset < reqs.length; offset += BATCH_SEGMENT) {
        const part = reqs.slice(offset, offset + BATCH_SEGMENT);
        try {
          await this.sendSegment(part, outcomes, offset);
        } catch (e) {
          const err = e instanceof Error ? e : new Error(String(e));
          for (let i = offset; i < reqs.length; i++) outcomes[i] ??= err;
          return outcomes;
        }
      }
      return outcomes;
    });
  }

  /** Sends `part` unacknowledged plus a closing NOOP that is; resolves when that ACK is in. */
  private sendSegment(part: readonly Request[], outcomes: BatchOutcome[], offset: number): Promise<void> {
    if (this.closed) return Promise.reject(new NetlinkErrno(EBADF, 'netlink socket closed'));
    // One contiguous seq range (the closing NOOP gets the next one).
    if (this.seq + part.length + 2 >= 0xffffffff) this.seq = 1;
    const first = this.seq + 1;
    this.seq += part.length;
    const bufs = part.map((req, i) =>
      encodeMessage({ type: req.type, flags: NLM_F.REQUEST | (req.flags ?? 0), seq: first + i, pid: this.portId, header: req.header, attrs: req.attrs ?? [] }),
    );
    this.segment = { first, count: part.length, outcomes, offset };
    const closing = this.send({ type: NLMSG.NOOP, header: Buffer.alloc(0) }, NLM_F.REQUEST | NLM_F.ACK, bufs);
    return closing.then(
      () => void (this.segment = undefined),
      (e: unknown) => {
        this.segment = undefined;
        throw e;
      },
    );
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

  /** `before`: encoded messages sent ahead of this one, in the same sendmsg calls (a batch segment). */
  private send(req: Request, flags: number, before?: readonly Buffer[]): Promise<{ parts: NlMsg[]; interrupted: boolean }> {
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
      if (before !== undefined) {
        // Only the closing message waits for a reply; if a sendmsg fails, it fails the segment.
        this.flushChunks([...before.map((b) => ({ seq, buf: b })), { seq, buf }], true);
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
    this.flushChunks(queued, false);
  }

  /** Sends in sendmsg-sized chunks; `stopOnError`: a failed chunk ends it (a batch segment's later chunks are not sent). */
  private flushChunks(queued: readonly { seq: number; buf: Buffer }[], stopOnError: boolean): void {
    for (let i = 0; i < queued.length; ) {
      let bytes = 0;
      let j = i;
      while (j < queued.length && (j === i || bytes + queued[j]!.buf.length <= MAX_BATCH_BYTES)) bytes += queued[j++]!.buf.length;
      if (!this.transmit(queued.slice(i, j)) && stopOnError) return;
      i = j;
    }
  }

  /** One sendmsg for these requests; if it fails, each of them fails with its error (false). */
  private transmit(batch: readonly { seq: number; buf: Buffer }[]): boolean {
    if (this.closed) return false; // close() already failed them
    try {
      this.addon.netlinkSend(this.fd, batch.length === 1 ? batch[0]!.buf : Buffer.concat(batch.map((b) => b.buf)));
      return true;
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      for (const { seq } of batch) {
        const p = this.pending.get(seq);
        this.settle(seq);
        p?.reject(err);
      }
      return false;
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
    if (!p) {
      const seg = this.segment;
      const i = seg ? msg.seq - seg.first : -1;
      if (seg && i >= 0 && i < seg.count && msg.type === NLMSG.ERROR) {
        const { errno, extack } = decodeError(msg);
        if (errno !== 0) seg.outcomes[seg.offset + i] = new NetlinkErrno(errno, extack);
      }
      return; // else multicast, or the reply to a request that timed out
    }
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
