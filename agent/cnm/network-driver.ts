// Docker's NetworkDriver over the attachment service: the same veth on weft0
// as a CNI or `weft attach` container, handed to dockerd in Join.
//
//   CreateNetwork   the pool must be weft IPAM's (--ipam-driver weft): the
//                   host subnet, or 0.0.0.0/0 (see ./ipam-driver)
//   CreateEndpoint  the address must be reserved by weft's IPAM; the MAC is
//                   reported (derived from the address) unless Docker gave one
//   Join            attach(handoff): the pair made, the container end left in
//                   the host namespace for dockerd to move into SandboxKey;
//                   reply: its name, the gateway, DisableGatewayService
//   Leave           detach(keepAddress): the veth and the record go, the
//                   address stays Docker's until its IPAM ReleaseAddress
//   DeleteEndpoint  the same, idempotent (a Leave lost to a restart is redone)
//   Program/RevokeExternalConnectivity  `-p` bindings (./port-rules)
//
// Scope "local": each dockerd keeps its own record of the network, created on
// every host with the same `docker network create -d weft --ipam-driver weft
// NAME`; weft's overlay joins the hosts' subnets by itself, so containers of
// that name on every host reach each other with no cluster store in Docker.
//
// Every endpoint is kept in ./endpoint-store before the reply, so an agent
// restart (also SIGKILL) loses none of them and Leave/DeleteEndpoint after it
// still find the veth to delete.

import type { Logger } from 'pino';
import { formatCidr, parseCidr, parseIp } from '../../ipam/cidr.js';
import { WeftError } from '../../ipam/errors.js';
import { Semaphore } from '../../encap/netlink/semaphore.js';
import type { EndpointStore, DockerEndpoint } from './endpoint-store.js';
import { type AttachmentDoor, type Handlers, UNCONSTRAINED_POOL, dockerReservation } from './ipam-driver.js';
import type { PortPublisher } from './port-rules.js';
import { map, parseCreateEndpoint, parseCreateNetwork, parseEndpointRef, parseJoin, parseNetworkId, parsePortMappings, asObject } from './protocol.js';

/** The prefix dockerd names the container's interface with (eth0, eth1, … by network order). */
export const DST_PREFIX = 'eth';

/** A locally administered unicast MAC derived from the address (as Docker's 02:42:<ip>), stable across restarts. */
export function macForAddress(ip: string): string {
  const n = parseIp(ip);
  return ['0a', '58', ...[24, 16, 8, 0].map((s) => ((n >>> s) & 0xff).toString(16).padStart(2, '0'))].join(':');
}

export interface NetworkDriverOptions {
  readonly attachments: AttachmentDoor;
  readonly store: EndpointStore;
  readonly ports: PortPublisher;
  readonly log: Logger;
}

function unknownEndpoint(endpointId: string): WeftError {
  return new WeftError('NOT_FOUND', `endpoint ${endpointId.slice(0, 12)} is unknown to weft (made before weft's state dir was reset?): remove the container and start it again`, { endpointId });
}

export function networkDriver(o: NetworkDriverOptions): Handlers {
  const { attachments: att, store, log } = o;
  // Port changes are applied in the order they were stored, so the table always ends as the records say.
  const portsLock = new Semaphore(1);
  const changePorts = (endpointId: string, fn: (e: DockerEndpoint) => DockerEndpoint): Promise<void> =>
    portsLock.run(async () => {
      await store.updateEndpoint(endpointId, fn);
      await o.ports.apply(store.endpoints());
    });

  const detach = async (e: DockerEndpoint): Promise<void> => {
    await att.detach({ containerId: e.key.containerId, ifname: e.key.ifname }, { keepAddress: true });
  };

  return {
    'NetworkDriver.GetCapabilities': async () => ({ Scope: 'local', ConnectivityScope: 'local' }),

    'NetworkDriver.CreateNetwork': async (body) => {
      const req = parseCreateNetwork(body);
      if (req.ipv6Count > 0) throw new WeftError('INVALID_ARGUMENT', 'weft networks are IPv4 only: create the network without --ipv6');
      const net = att.hostNetwork();
      const subnet = formatCidr(net.subnet);
      const v4 = req.ipv4[0];
      let pool: string | undefined;
      try {
        pool = v4 === undefined ? undefined : formatCidr(parseCidr(v4.pool));
      } catch {
        pool = v4?.pool;
      }
      if (req.ipv4.length !== 1 || (pool !== subnet && pool !== UNCONSTRAINED_POOL)) {
        throw new WeftError('INVALID_ARGUMENT', `the network's pool ${req.ipv4.map((d) => d.pool).join(', ') || '(none)'} is not this host's weft subnet ${subnet}: create it with --ipam-driver weft (docker network create -d weft --ipam-driver weft NAME)`);
      }
      const gw = v4!.gateway?.replace(/\/\d+$/, '');
      if (gw !== undefined && gw !== net.gateway) {
        throw new WeftError('INVALID_ARGUMENT', `gateway ${gw} is not the bridge's address ${net.gateway}: create the network without --gateway`);
      }
      await store.putNetwork({ networkId: req.networkId, pool: subnet });
      log.info({ networkId: req.networkId, pool: subnet }, 'Docker network created');
      return {};
    },

    'NetworkDriver.DeleteNetwork': async (body) => {
      const networkId = parseNetworkId(body, 'DeleteNetwork');
      await store.deleteNetwork(networkId);
      log.info({ networkId }, 'Docker network deleted');
      return {};
    },

    'NetworkDriver.CreateEndpoint': async (body) => {
      const req = parseCreateEndpoint(body);
      if (store.network(req.networkId) === undefined) {
        throw new WeftError('NOT_FOUND', `network ${req.networkId.slice(0, 12)} is unknown to weft: remove it (docker network rm) and create it again with -d weft --ipam-driver weft`, { networkId: req.networkId });
      }
      if (req.addressIPv6 !== undefined) throw new WeftError('INVALID_ARGUMENT', 'weft networks are IPv4 only: the endpoint has an IPv6 address');
      if (req.address === undefined) throw new WeftError('INVALID_ARGUMENT', 'the endpoint has no IPv4 address: create the network with --ipam-driver weft');
      const ip = req.address.replace(/\/\d+$/, '');
      const held = dockerReservation(att.reservations(), ip);
      if (held === undefined) {
        throw new WeftError('NOT_FOUND', `address ${req.address} was not handed out by weft's IPAM: create the network with --ipam-driver weft`, { address: req.address });
      }
      const mac = req.mac ?? macForAddress(ip);
      await store.putEndpoint({ endpointId: req.endpointId, networkId: req.networkId, key: { containerId: held.containerId, ifname: held.ifname }, address: req.address, mac });
      log.info({ endpointId: req.endpointId, address: req.address, mac }, 'Docker endpoint created');
      // Docker treats an Interface in the reply as a change of what it supplied: report only what it left empty.
      return req.mac === undefined ? { Interface: { MacAddress: mac } } : {};
    },

    'NetworkDriver.EndpointOperInfo': async (body) => {
      const req = parseEndpointRef(body, 'EndpointOperInfo');
      const e = store.endpoint(req.endpointId);
      if (e === undefined) throw unknownEndpoint(req.endpointId);
      return { Value: { address: e.address, mac: e.mac, ...(e.sandboxKey ? { sandboxKey: e.sandboxKey } : {}) } };
    },

    'NetworkDriver.DeleteEndpoint': async (body) => {
      const req = parseEndpointRef(body, 'DeleteEndpoint');
      const e = store.endpoint(req.endpointId);
      if (e === undefined) return {};
      await detach(e);
      if ((e.ports?.length ?? 0) > 0) await changePorts(e.endpointId, (x) => ({ ...x, ports: [] }));
      await store.deleteEndpoint(req.endpointId);
      log.info({ endpointId: req.endpointId }, 'Docker endpoint deleted');
      return {};
    },

    'NetworkDriver.Join': async (body) => {
      const req = parseJoin(body);
      const e = store.endpoint(req.endpointId);
      if (e === undefined) throw unknownEndpoint(req.endpointId);
      const a = await att.attach({
        containerId: e.key.containerId,
        ifname: e.key.ifname,
        netns: req.sandboxKey,
        ip: e.address,
        mac: e.mac,
        network: `docker/${e.networkId.slice(0, 12)}`,
        handoff: true,
      });
      await store.updateEndpoint(e.endpointId, (x) => ({ ...x, sandboxKey: req.sandboxKey }));
      log.info({ endpointId: e.endpointId, sandboxKey: req.sandboxKey, hostIfName: a.hostIfName }, 'Docker endpoint joined');
      return { InterfaceName: { SrcName: a.handoffIfName, DstPrefix: DST_PREFIX }, Gateway: a.gateway, DisableGatewayService: true };
    },

    'NetworkDriver.Leave': async (body) => {
      const req = parseEndpointRef(body, 'Leave');
      const e = store.endpoint(req.endpointId);
      if (e === undefined) return {};
      await detach(e);
      // Applied to the record as it is when the write runs, not to the copy read before the detach.
      await store.updateEndpoint(e.endpointId, ({ sandboxKey: _left, ...rest }) => rest);
      log.info({ endpointId: e.endpointId }, 'Docker endpoint left');
      return {};
    },

    'NetworkDriver.ProgramExternalConnectivity': async (body) => {
      const o = asObject(body, 'ProgramExternalConnectivity');
      const req = parseEndpointRef(o, 'ProgramExternalConnectivity');
      const ports = parsePortMappings(map(o, 'Options'));
      if (store.endpoint(req.endpointId) === undefined) throw unknownEndpoint(req.endpointId);
      if (ports.length > 0) {
        await changePorts(req.endpointId, (x) => ({ ...x, ports }));
        log.info({ endpointId: req.endpointId, ports }, 'ports published');
      }
      return {};
    },

    'NetworkDriver.RevokeExternalConnectivity': async (body) => {
      const req = parseEndpointRef(body, 'RevokeExternalConnectivity');
      const e = store.endpoint(req.endpointId);
      if (e !== undefined && (e.ports?.length ?? 0) > 0) await changePorts(req.endpointId, (x) => ({ ...x, ports: [] }));
      return {};
    },

    'NetworkDriver.DiscoverNew': async () => ({}),
    'NetworkDriver.DiscoverDelete': async () => ({}),
  };
}
