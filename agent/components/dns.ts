// The DNS component: the record store (which gossip carries), registration of
// this host's names, and the DNS server containers ask.
//
// - Registration follows the attachment service's events, so the front doors
//   (CNI, Docker, `weft attach`) know nothing of DNS: attached → the names of
//   agent/dns/names.ts, detached → their tombstones. On start it re-announces
//   every recorded attachment and every `weft dns add` record, so an agent
//   restart loses nothing (and the store's owner rule removes what is gone).
// - The server listens on the gateway address of this host's subnet once the
//   lease is held (and moves with it); until the bridge has that address the
//   bind fails and is retried each second.
// - Clients: only the overlay network and loopback (never the underlay).
// - A named namespace attached with `weft attach --netns` gets
//   /etc/netns/NAME/resolv.conf; CNI results get `dns` (see clientDns).

import { readFileSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { cidrContains, formatIp, parseIp } from '../../ipam/cidr.js';
import { gatewayOf } from '../../ipam/address-pool.js';
import { WeftError } from '../../ipam/errors.js';
import type { Attachment } from '../api/types.js';
import type { Routes } from '../api/server.js';
import type { AttachmentService, AttachmentEvent } from '../attachments/service.js';
import type { Component } from '../core/component.js';
import type { NodeState } from '../core/node-state.js';
import type { Zone } from '../dns/dns-answer.js';
import { DnsServer, type ListenAddress } from '../dns/dns-server.js';
import { Forwarder, parseResolvConf, parseUpstream, type Upstream } from '../dns/forwarder.js';
import { parseListen, type ListenSpec } from '../dns/listen.js';
import { attachmentAddress, attachmentNames, parseRecordName } from '../dns/names.js';
import { type RecordStore, STATIC_CONTAINER } from '../dns/record-store.js';
import { type ClientDns, removeNetnsResolvConf, writeNetnsResolvConf } from '../dns/resolv-conf.js';
import { parseStaticRequest, StaticRecords } from '../dns/static-records.js';

export interface DnsOptions {
  readonly state: NodeState;
  readonly store: RecordStore;
  readonly attachments: () => AttachmentService;
  readonly stateDir: string;
  /** --dns-listen */
  readonly listen: string;
  /** --dns-domain, e.g. "weft.local." */
  readonly domain: string;
  /** --dns-upstream; empty: the nameservers of resolvConfPath */
  readonly upstreams: readonly string[];
  readonly ttl: number;
  readonly upstreamTimeoutMs: number;
  readonly log: Logger;
  readonly resolvConfPath?: string;
  /** Where named namespaces' resolver files go; ip netns exec reads /etc/netns. */
  readonly etcNetns?: string;
  readonly collectEveryMs?: number;
}

export function parseDomain(raw: string): string {
  const d = raw.replace(/\.$/, '').toLowerCase();
  try {
    return parseRecordName(d, '--dns-domain');
  } catch (e) {
    throw new WeftError('INVALID_ARGUMENT', (e as Error).message, { flag: 'dns-domain' });
  }
}

function isLoopback(a: string): boolean {
  return a.startsWith('127.') || a === '::1' || a.startsWith('::ffff:127.');
}

export class DnsComponent implements Component {
  readonly name = 'dns';
  private readonly domain: string;
  private readonly listenSpec: ListenSpec;
  private readonly configuredUpstreams: Upstream[];
  private statics: StaticRecords | undefined;
  private server: DnsServer | undefined;
  private serverFor: string | undefined;
  private readonly forwarder: Forwarder;
  private readonly rotation = new Map<string, number>();
  private readonly stopping = new AbortController();
  private unsubscribes: (() => void)[] = [];
  private timers: NodeJS.Timeout[] = [];
  private binding: Promise<void> = Promise.resolve();
  private lastBindError: string | undefined;
  private readonly allowedMemo = new Map<string, boolean>();
  private allowedFor: unknown;

  constructor(private readonly o: DnsOptions) {
    this.domain = parseDomain(o.domain);
    this.listenSpec = parseListen(o.listen);
    this.configuredUpstreams = o.upstreams.map(parseUpstream);
    this.forwarder = new Forwarder({ upstreams: () => this.upstreams(), timeoutMs: o.upstreamTimeoutMs });
  }

  /** resolv.conf's nameservers, parsed again only when the file changed (every forwarded query asks). */
  private resolvConf: { readonly stamp: string; readonly hosts: string[] } | undefined;

  private resolvConfHosts(): string[] | undefined {
    const path = this.o.resolvConfPath ?? '/etc/resolv.conf';
    try {
      const st = statSync(path);
      const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
      if (this.resolvConf?.stamp !== stamp) this.resolvConf = { stamp, hosts: parseResolvConf(readFileSync(path, 'utf8')) };
      return this.resolvConf.hosts;
    } catch {
      this.resolvConf = undefined;
      return undefined;
    }
  }

  /** --dns-upstream, or resolv.conf's nameservers as they are now (it may change), minus our own addresses. */
  private upstreams(): Upstream[] {
    if (this.configuredUpstreams.length > 0) return this.configuredUpstreams;
    const hosts = this.resolvConfHosts();
    if (hosts === undefined) return [];
    const ours = new Set((this.server?.bound ?? []).map((b) => b.host));
    return hosts
      .filter((h) => !ours.has(h))
      .map((host) => ({ host, port: 53 }));
  }

  private zone(): Zone {
    const { store } = this.o;
    return {
      domain: this.domain,
      ttl: this.o.ttl,
      lookup: (n) => store.lookup(n),
      reverse: (a) => store.reverse(a),
      isBetween: (n) => store.isBetween(n),
      inOverlay: (a) => this.inOverlay(a),
      rotation: (n) => {
        if (this.rotation.size > 10_000) this.rotation.clear();
        const k = this.rotation.get(n) ?? 0;
        this.rotation.set(n, (k + 1) % 1_000_000);
        return k;
      },
    };
  }

  /** Clients the server answers: loopback and the overlay network. Memoised per address (the per-query path). */
  private allowed(a: string): boolean {
    const cfg = this.o.state.get().config;
    if (cfg !== this.allowedFor || this.allowedMemo.size > 4096) {
      this.allowedMemo.clear();
      this.allowedFor = cfg;
    }
    let ok = this.allowedMemo.get(a);
    if (ok === undefined) {
      ok = isLoopback(a) || this.inOverlay(a);
      this.allowedMemo.set(a, ok);
    }
    return ok;
  }

  private inOverlay(a: string): boolean {
    const cfg = this.o.state.get().config;
    const v4 = a.startsWith('::ffff:') ? a.slice(7) : a;
    if (cfg === undefined || !/^\d+\.\d+\.\d+\.\d+$/.test(v4)) return false;
    return cidrContains(cfg.network, parseIp(v4));
  }

  /** What a container of this host should use as resolver; undefined when the server is off. */
  clientDns(gateway: string): ClientDns | undefined {
    if (this.listenSpec.kind === 'off') return undefined;
    // A resolver on another port cannot be named in resolv.conf; such setups configure clients themselves.
    const nameservers = this.listenSpec.kind === 'gateway' ? (this.listenSpec.port === 53 ? [gateway] : []) : this.listenSpec.addresses.filter((a) => a.port === 53).map((a) => a.host);
    if (nameservers.length === 0) return undefined;
    return { nameservers, search: [this.domain], options: ['ndots:1'] };
  }

  async start(): Promise<void> {
    const { store, log } = this.o;
    this.statics = await StaticRecords.open(this.o.stateDir);
    for (const r of this.statics.all()) store.add(r.name, r.address, STATIC_CONTAINER);
    const service = this.o.attachments();
    for (const a of service.list().attachments) this.register(a);
    this.unsubscribes.push(service.subscribe((ev) => this.onAttachment(ev)));
    // The native UDP fast path answers without asking JS: it must hear of every change at once.
    this.unsubscribes.push(store.subscribe(() => this.server?.sync()));
    this.unsubscribes.push(this.o.state.subscribe(() => this.server?.sync()));
    log.info({ records: store.own().length, domain: this.domain }, 'DNS records of this host announced');
    this.o.state.addStatus('dns', () => this.status());
    this.timers.push(setInterval(() => store.collect(), this.o.collectEveryMs ?? 60_000).unref());
    if (this.listenSpec.kind === 'fixed') {
      const where = this.listenSpec.addresses.map((a) => `${a.host}:${a.port}`).join(', ');
      await this.bind(this.listenSpec.addresses).catch((e: unknown) => {
        throw new WeftError('INVALID_ARGUMENT', `--dns-listen ${where}: cannot bind (${(e as Error).message}); give an address of this host and a free port, or "gateway", or empty to turn DNS off`, { flag: 'dns-listen' });
      });
    } else if (this.listenSpec.kind === 'gateway') {
      this.unsubscribes.push(this.o.state.subscribe(() => this.follow()));
      this.timers.push(setInterval(() => this.follow(), 1000).unref());
      this.follow();
    }
  }

  private register(a: Attachment): void {
    const { names, skipped } = attachmentNames(a);
    if (skipped.length > 0) this.o.log.warn({ containerId: a.containerId, skipped }, 'container name is not a valid DNS name; not registered');
    for (const n of names) this.o.store.add(n, attachmentAddress(a), a.containerId);
  }

  /**
   * Makes this host's records of one container match its attachments now: an attach that
   * replaced an earlier one (a new address after a lease change, another --name) leaves no
   * stale record, and a container with two interfaces keeps both.
   */
  private reconcileContainer(containerId: string): void {
    const want = new Set<string>();
    for (const a of this.o.attachments().list().attachments) {
      if (a.containerId !== containerId) continue;
      for (const n of attachmentNames(a).names) want.add(`${n} ${attachmentAddress(a)}`);
    }
    for (const r of this.o.store.own()) {
      if (r.containerId === containerId && !want.has(`${r.name} ${r.address}`)) this.o.store.remove(r.name, r.address, containerId);
    }
  }

  private onAttachment(ev: AttachmentEvent): void {
    const a = ev.attachment;
    this.reconcileContainer(a.containerId);
    if (ev.kind === 'attached') {
      this.register(a);
      const dns = this.clientDns(a.gateway);
      if (dns !== undefined && a.network === undefined) {
        writeNetnsResolvConf(this.o.etcNetns ?? '/etc/netns', a.netns, dns).catch((e: unknown) => this.o.log.warn({ err: (e as Error).message, netns: a.netns }, 'cannot write the namespace resolv.conf'));
      }
    } else {
      if (a.network === undefined) removeNetnsResolvConf(this.o.etcNetns ?? '/etc/netns', a.netns).catch(() => undefined);
    }
  }

  /** Gateway mode: (re)bind when the gateway address is known or has changed. */
  private follow(): void {
    if (this.listenSpec.kind !== 'gateway' || this.stopping.signal.aborted) return;
    const lease = this.o.state.get().lease;
    if (lease === undefined) return;
    const gw = formatIp(gatewayOf(lease.subnet));
    if (this.serverFor === gw && this.server !== undefined) return;
    const port = this.listenSpec.port;
    this.binding = this.binding.then(async () => {
      if (this.serverFor === gw && this.server !== undefined) return;
      await this.server?.stop();
      this.server = undefined;
      await this.bind([{ host: gw, port }]).then(
        () => (this.serverFor = gw),
        (e: unknown) => {
          // EADDRNOTAVAIL until the data plane has put the gateway address on the bridge.
          const code = (e as NodeJS.ErrnoException).code;
          const msg =
            code === 'EADDRINUSE'
              ? `${gw}:${port} is taken by another server: stop it, or move weft's with --dns-listen (empty turns it off)`
              : code === 'EACCES'
                ? `not allowed to bind ${gw}:${port} (port 53 needs root or CAP_NET_BIND_SERVICE); or use --dns-listen gateway:PORT`
                : (e as Error).message;
          if (msg !== this.lastBindError) this.o.log[code === 'EADDRNOTAVAIL' ? 'info' : 'warn']({ err: msg, gateway: gw }, 'DNS server cannot bind yet; retrying every second');
          this.lastBindError = msg;
        },
      );
    });
  }

  private async bind(addresses: ListenAddress[]): Promise<void> {
    const server = new DnsServer({
      listen: addresses,
      zone: this.zone(),
      forwarder: this.forwarder,
      allowed: (a) => this.allowed(a),
      log: this.o.log,
      // The overlay network is part of what an answer depends on (PTR authority), so its change counts too.
      generation: () => this.o.store.generation * 2 + (this.o.state.get().config === undefined ? 0 : 1),
      // What allowed() accepts, as networks the native fast path can test: loopback and the overlay.
      allowedNetworks: () => {
        const cfg = this.o.state.get().config;
        return [{ addr: parseIp('127.0.0.0'), len: 8 }, ...(cfg ? [cfg.network] : [])];
      },
    });
    await server.start();
    if (this.stopping.signal.aborted) {
      await server.stop();
      return;
    }
    this.server = server;
    this.lastBindError = undefined;
  }

  status(): Record<string, unknown> {
    const nativeUdp = this.server?.fastPathStats();
    return {
      enabled: this.listenSpec.kind !== 'off',
      listening: (this.server?.bound ?? []).map((b) => `${b.host}:${b.port}`),
      ...(this.lastBindError ? { bindError: this.lastBindError } : {}),
      domain: `${this.domain}.`,
      upstreams: this.upstreams().map((u) => `${u.host}:${u.port}`),
      records: { ...this.o.store.stats(), generation: this.o.store.generation },
      queries: this.server?.counters,
      ...(nativeUdp ? { nativeUdp } : {}),
      forwarder: this.forwarder.counters,
      gossip: this.o.store.counters,
    };
  }

  get routes(): Routes {
    return {
      'GET /v1/dns': async () => ({ domain: `${this.domain}.`, localId: this.o.store.localId, records: this.o.store.list() }),
      'POST /v1/dns/add': async (body) => {
        const { name, address } = parseStaticRequest(body, true);
        await this.statics!.add({ name, address: address! });
        const r = this.o.store.add(name, address!, STATIC_CONTAINER);
        return { name, address, version: r.version };
      },
      'POST /v1/dns/rm': async (body) => {
        const { name, address } = parseStaticRequest(body, false);
        const gone = await this.statics!.remove(name, address);
        for (const r of gone) this.o.store.remove(r.name, r.address, STATIC_CONTAINER);
        if (gone.length === 0) {
          const own = this.o.store.own().filter((r) => r.name === name && (address === undefined || r.address === address));
          const hint = own.length > 0 ? `: ${name} belongs to container ${own[0]!.containerId}; detach it to remove the name` : '';
          throw new WeftError('NOT_FOUND', `no record ${name}${address ? ` ${address}` : ''} added with weft dns add on this host${hint}`, { name });
        }
        return { removed: gone };
      },
    };
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    for (const u of this.unsubscribes) u();
    for (const t of this.timers) clearInterval(t);
    await this.binding;
    await this.server?.stop();
    this.forwarder.close();
  }
}
