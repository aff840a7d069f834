// The CNI protocol's view of the attachment service. cni-plugin/ validates
// every call and shapes every result; this adapter only translates its typed
// requests into attach/detach/check calls and the attachment back into CNI's
// internal result. CNI attachments carry their network name, so a runtime's
// GC frees only what it attached through that network, never `weft attach`'s;
// it also frees reservations that have no record at all (an attach cut short by
// a killed agent), which belong to no network yet.

import { CniError, CniErrorCode, type AddRequest, type AttachmentService as CniService, type CheckRequest, type DelRequest, type Dns, type GcAttachment, type InternalResult, type NetworkSettings, type ServiceStatus } from '../cni-plugin/index.js';
import { WeftError, isWeftError } from '../ipam/errors.js';
import type { AttachmentService } from './attachments/service.js';
import { keyString } from './attachments/store.js';
import type { Attachment } from './api/types.js';

export interface CniServiceOptions {
  readonly attachments: AttachmentService;
  /** What readiness still waits for (empty when ready), as /readyz reports it. */
  readonly notReady: () => string[];
  /** The overlay MTU once known. */
  readonly mtu: () => number | undefined;
  /** The resolver a container gets (weft's DNS server and search domain); undefined when DNS is off. */
  readonly dns?: (a: Attachment) => Dns | undefined;
}

/**
 * The host end of the veth comes first, as the bridge plugin reports it:
 * chained plugins (bandwidth) find the container's peer on the host there.
 */
function toResult(a: Attachment, dns: Dns | undefined): InternalResult {
  return {
    interfaces: [{ name: a.hostIfName }, { name: a.ifname, mac: a.mac, sandbox: a.netns, mtu: a.mtu }],
    ips: [{ address: a.ip, gateway: a.gateway, interface: 1 }],
    routes: a.routes.map((r) => ({ dst: r.dst, gw: r.gw })),
    dns: dns ?? (a.dns ? { nameservers: [...a.dns.nameservers] } : {}),
  };
}

/**
 * A refusal of a requested address names the CNI field that asked for it
 * (runtimeConfig.ips, CNI_ARGS IP...), so the operator knows which of the
 * runtime's options to change: taken → weft's 100, outside the subnet → 7.
 */
function requestRefused(e: unknown, req: AddRequest): unknown {
  if (req.ip === undefined || !isWeftError(e)) return e;
  const field = req.ipField ?? 'ip';
  if (e.code === 'CONFLICT') return new CniError(CniErrorCode.Conflict, `${field} asks for ${req.ip}, which is already in use`, e.message);
  if (e.code === 'INVALID_ARGUMENT' && e.details['field'] === 'ip') return new CniError(CniErrorCode.InvalidNetworkConfig, `invalid network config: ${field}`, e.message);
  return e;
}

export function cniService(o: CniServiceOptions): CniService {
  return {
    async add(req: AddRequest): Promise<InternalResult> {
      const mtu = o.mtu();
      if (req.mtu !== undefined && mtu !== undefined && req.mtu !== mtu) {
        // weft computes the MTU from the underlay; a different one would break either the path or performance.
        throw new WeftError('INVALID_ARGUMENT', `mtu ${req.mtu} in the network config differs from the overlay MTU ${mtu} that weft computed from the underlay; remove "mtu" from the config`, { field: 'mtu' });
      }
      const a = await o.attachments
        .attach({
          containerId: req.containerId,
          ifname: req.ifname,
          netns: req.netns,
          network: req.networkName,
          ...(req.pod.name ? { name: req.pod.name } : {}),
          ...(req.pod.namespace ? { podNamespace: req.pod.namespace } : {}),
          ...(req.mac ? { mac: req.mac } : {}),
          ...(req.ip ? { ip: req.ip } : {}),
        })
        .catch((e: unknown) => {
          throw requestRefused(e, req);
        });
      return toResult(a, o.dns?.(a));
    },

    async del(req: DelRequest): Promise<void> {
      await o.attachments.detach({ containerId: req.containerId, ifname: req.ifname });
    },

    async check(req: CheckRequest): Promise<void> {
      // Not code 3 ("unknown container, no cleanup needed"): the runtime must DEL to give the address back.
      const damaged = (what: string): CniError =>
        new CniError(CniErrorCode.AttachmentDamaged, `CHECK failed: ${what}; delete and add the container's network again`, what);
      const r = await o.attachments.check({ containerId: req.containerId, ifname: req.ifname });
      if (!r.ok) throw damaged(`missing ${r.missing.join('; ')}`);
      if (r.attachment.netns !== req.netns) throw damaged(`the attachment is in ${r.attachment.netns}, not in ${req.netns}`);
    },

    async gc(valid: GcAttachment[], networkName: string, _settings: NetworkSettings): Promise<void> {
      const keep = new Set(valid.map(keyString));
      const service = o.attachments;
      const recorded = service.list().attachments;
      const stale = recorded.filter((a) => a.network === networkName && !keep.has(keyString(a)));
      // Each is re-checked under its key's lock: an ADD that ran since (a retry) is never undone.
      for (const a of stale) await service.detachIf(a, (rec) => rec?.createdAt === a.createdAt, `CNI GC of network ${networkName}`);
      // A reservation without a record is an attach cut short (agent killed): no network owns it yet.
      const has = new Set([...recorded.map(keyString), ...service.inFlight().map(keyString)]);
      const orphans = service.reservations().filter((x) => !has.has(keyString(x)) && !keep.has(keyString(x)) && !service.isRuntimeManaged(x));
      for (const r of orphans) {
        await service.detachIf(r, (rec, res) => rec === undefined && res?.reservedAt === r.reservedAt, `CNI GC: reservation of ${r.ip} has no attachment record`);
      }
    },

    async status(): Promise<ServiceStatus> {
      const missing = o.notReady();
      return missing.length === 0 ? { ready: true } : { ready: false, reason: `the weft agent is not ready: waiting for ${missing.join(', ')}` };
    },
  };
}
