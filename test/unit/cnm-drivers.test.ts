// The Docker plugin's NetworkDriver and IpamDriver handlers, driven in the
// order dockerd calls them, over the real attachment service with a fake
// kernel and in-memory state files: the address pool shared with CNI, the
// handoff veth, Leave keeping the address for ReleaseAddress, the endpoint
// records surviving a restart, port bindings, and every refusal's message.

import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { AddressPool, type StateStorage } from '../../ipam/address-pool.js';
import { parseCidr } from '../../ipam/cidr.js';
import { AttachmentService, type HostNetwork } from '../../agent/attachments/service.js';
import { AttachmentStore } from '../../agent/attachments/store.js';
import { EndpointStore, type DockerEndpoint } from '../../agent/cnm/endpoint-store.js';
import { ipamDriver, type Handlers } from '../../agent/cnm/ipam-driver.js';
import { macForAddress, networkDriver } from '../../agent/cnm/network-driver.js';
import { portRules, portsScript } from '../../agent/cnm/port-rules.js';
import { pluginHandlers } from '../../agent/cnm/server.js';
import { handoffIfNameFor, hostIfNameFor } from '../../encap/plumb.js';
import { FakePlumber, mem } from './support/attachment-fakes.js';

const NET: HostNetwork = { subnet: parseCidr('10.42.7.0/24'), mtu: 1450 };
const NID = 'a'.repeat(64);
const EID = 'e'.repeat(64);
const SANDBOX = '/var/run/docker/netns/0123456789ab';

async function setup(storages = { pool: mem(), att: mem(), eps: mem() }) {
  const events: string[] = [];
  const plumber = new FakePlumber(events);
  let net: HostNetwork | undefined = NET;
  const log = pino({ level: 'silent' });
  const service = new AttachmentService({ pool: await AddressPool.open(storages.pool), store: await AttachmentStore.open(storages.att), plumber, network: () => net, log });
  const store = await EndpointStore.open(storages.eps);
  const applied: DockerEndpoint[][] = [];
  let keys = 0;
  const h: Handlers = pluginHandlers(
    ipamDriver(service, { newKey: () => ({ containerId: `docker-k${++keys}`, ifname: 'eth0' }), boundToEndpoint: (id) => store.endpoints().some((e) => e.key.containerId === id) }),
    networkDriver({ attachments: service, store, ports: { apply: async (e) => void applied.push([...e]) }, log }),
  );
  const call = (m: string, body?: unknown): Promise<Record<string, unknown>> => h[m]!(body) as Promise<Record<string, unknown>>;
  const fails = async (m: string, body?: unknown): Promise<string> => {
    try {
      await call(m, body);
    } catch (e) {
      return (e as Error).message;
    }
    throw new Error(`${m} did not fail`);
  };
  return { service, store, plumber, events, call, fails, applied, storages, setNetwork: (n: HostNetwork | undefined) => (net = n) };
}

/** CreateNetwork as dockerd sends it after RequestPool and the gateway's RequestAddress. */
async function createNetwork(t: Awaited<ReturnType<typeof setup>>) {
  const pool = await t.call('IpamDriver.RequestPool', { AddressSpace: 'weft', Pool: '', SubPool: '', Options: {}, V6: false });
  const gw = await t.call('IpamDriver.RequestAddress', { PoolID: pool['PoolID'], Address: '', Options: { RequestAddressType: 'com.docker.network.gateway' } });
  await t.call('NetworkDriver.CreateNetwork', { NetworkID: NID, IPv4Data: [{ AddressSpace: 'weft', Pool: pool['Pool'], Gateway: gw['Address'] }], IPv6Data: [], Options: {} });
  return { poolId: pool['PoolID'] as string, pool: pool['Pool'], gateway: gw['Address'] };
}

async function startContainer(t: Awaited<ReturnType<typeof setup>>, poolId: string, eid = EID, address = '') {
  const a = await t.call('IpamDriver.RequestAddress', { PoolID: poolId, Address: address, Options: {} });
  const ep = await t.call('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: eid, Interface: { Address: a['Address'] }, Options: {} });
  const join = await t.call('NetworkDriver.Join', { NetworkID: NID, EndpointID: eid, SandboxKey: SANDBOX, Options: {} });
  return { address: a['Address'] as string, ep, join };
}

describe('Docker plugin handshake', () => {
  it('implements NetworkDriver and IpamDriver, local scope, IPv4 address space weft', async () => {
    const t = await setup();
    expect(await t.call('Plugin.Activate')).toEqual({ Implements: ['NetworkDriver', 'IpamDriver'] });
    expect(await t.call('NetworkDriver.GetCapabilities')).toEqual({ Scope: 'local', ConnectivityScope: 'local' });
    expect(await t.call('IpamDriver.GetDefaultAddressSpaces')).toEqual({ LocalDefaultAddressSpace: 'weft', GlobalDefaultAddressSpace: 'weft' });
    expect(await t.call('IpamDriver.GetCapabilities')).toMatchObject({ RequiresMACAddress: false });
  });
});

describe('IpamDriver', () => {
  it("the pool is the host's subnet, the gateway the bridge's address", async () => {
    const t = await setup();
    // Without --subnet the pool is 0.0.0.0/0: libnetwork would refuse the host subnet, which weft0 routes, and ask again forever.
    expect(await createNetwork(t)).toEqual({ poolId: 'weft:10.42.7.0/24', pool: '0.0.0.0/0', gateway: '10.42.7.1/24' });
    // The gateway is the bridge's: never a reservation of the pool.
    expect(t.service.reservations()).toEqual([]);
  });

  it('refuses another subnet, an --ip-range, IPv6 and another gateway, saying why', async () => {
    const t = await setup();
    expect(await t.fails('IpamDriver.RequestPool', { AddressSpace: 'weft', Pool: '192.168.5.0/24' })).toMatch(/subnet 192\.168\.5\.0\/24 cannot be used.*host's lease 10\.42\.7\.0\/24.*without --subnet/);
    expect(await t.call('IpamDriver.RequestPool', { AddressSpace: 'weft', Pool: '10.42.7.0/24' })).toMatchObject({ Pool: '10.42.7.0/24' });
    expect(await t.fails('IpamDriver.RequestPool', { AddressSpace: 'weft', Pool: '10.42.7.0/24', SubPool: '10.42.7.128/25' })).toMatch(/--ip-range/);
    expect(await t.fails('IpamDriver.RequestPool', { AddressSpace: 'weft', V6: true })).toMatch(/IPv4 addresses only/);
    expect(await t.fails('IpamDriver.RequestAddress', { PoolID: 'weft:10.42.7.0/24', Address: '10.42.7.254', Options: { RequestAddressType: 'com.docker.network.gateway' } })).toMatch(/gateway of 10\.42\.7\.0\/24 is the bridge's address 10\.42\.7\.1/);
    expect(await t.fails('IpamDriver.RequestAddress', { PoolID: 'weft:10.42.9.0/24', Options: {} })).toMatch(/not this host's weft subnet.*create it again/);
  });

  it('hands out addresses from the pool CNI uses, honours a free --ip and refuses a taken one', async () => {
    const t = await setup();
    const { poolId } = await createNetwork(t);
    // A CNI container first: Docker must not get its address.
    await t.service.attach({ containerId: 'cni1', netns: '/run/netns/c1' });
    const a = await t.call('IpamDriver.RequestAddress', { PoolID: poolId, Address: '', Options: {} });
    expect(a['Address']).toBe('10.42.7.3/24');
    expect(await t.call('IpamDriver.RequestAddress', { PoolID: poolId, Address: '10.42.7.50', Options: {} })).toMatchObject({ Address: '10.42.7.50/24' });
    expect(await t.fails('IpamDriver.RequestAddress', { PoolID: poolId, Address: '10.42.7.2', Options: {} })).toMatch(/10\.42\.7\.2 is already held by container cni1/);
    expect(await t.fails('IpamDriver.RequestAddress', { PoolID: poolId, Address: '10.42.8.5', Options: {} })).toMatch(/outside this host's weft subnet/);
    await t.call('IpamDriver.ReleaseAddress', { PoolID: poolId, Address: '10.42.7.50' });
    // Releasing twice, or an address of CNI's, changes nothing.
    await t.call('IpamDriver.ReleaseAddress', { PoolID: poolId, Address: '10.42.7.50' });
    await t.call('IpamDriver.ReleaseAddress', { PoolID: poolId, Address: '10.42.7.2' });
    expect(t.service.reservations().map((r) => r.ip).sort()).toEqual(['10.42.7.2', '10.42.7.3']);
  });

  it('answers "not ready" before the lease is held', async () => {
    const t = await setup();
    t.setNetwork(undefined);
    expect(await t.fails('IpamDriver.RequestPool', { AddressSpace: 'weft' })).toMatch(/no subnet lease yet; try again/);
  });

  it('an exhausted pool says so', async () => {
    const t = await setup();
    t.setNetwork({ subnet: parseCidr('10.42.7.0/30'), mtu: 1450 });
    const poolId = 'weft:10.42.7.0/30';
    await t.call('IpamDriver.RequestAddress', { PoolID: poolId, Options: {} });
    expect(await t.fails('IpamDriver.RequestAddress', { PoolID: poolId, Options: {} })).toMatch(/no free address left in 10\.42\.7\.0\/30/);
  });
});

describe('NetworkDriver', () => {
  it('a container start: the MAC reported, a veth on weft0 handed over in Join with the gateway', async () => {
    const t = await setup();
    const { poolId } = await createNetwork(t);
    const { address, ep, join } = await startContainer(t, poolId);
    expect(address).toBe('10.42.7.2/24');
    expect(ep).toEqual({ Interface: { MacAddress: macForAddress('10.42.7.2') } });
    const host = hostIfNameFor('docker-k1', 'eth0');
    expect(join).toEqual({ InterfaceName: { SrcName: handoffIfNameFor(host), DstPrefix: 'eth' }, Gateway: '10.42.7.1', DisableGatewayService: true });
    expect(t.events).toContain(`handoff ${host} ${handoffIfNameFor(host)} mtu 1450`);
    const [a] = t.service.list().attachments;
    expect(a).toMatchObject({ containerId: 'docker-k1', netns: SANDBOX, ip: '10.42.7.2/24', mac: macForAddress('10.42.7.2'), hostIfName: host });
  });

  it('a MAC Docker gives is used and not reported back (Docker would take that as a change)', async () => {
    const t = await setup();
    const { poolId } = await createNetwork(t);
    const a = await t.call('IpamDriver.RequestAddress', { PoolID: poolId, Options: {} });
    const ep = await t.call('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: EID, Interface: { Address: a['Address'], MacAddress: '02:AA:BB:CC:DD:EE' } });
    expect(ep).toEqual({});
    await t.call('NetworkDriver.Join', { NetworkID: NID, EndpointID: EID, SandboxKey: SANDBOX });
    expect(t.service.list().attachments[0]?.mac).toBe('02:aa:bb:cc:dd:ee');
  });

  it('Leave and DeleteEndpoint remove the veth and the record; the address stays until ReleaseAddress', async () => {
    const t = await setup();
    const { poolId } = await createNetwork(t);
    await startContainer(t, poolId);
    await t.call('NetworkDriver.Leave', { NetworkID: NID, EndpointID: EID });
    expect(t.plumber.links.size).toBe(0);
    expect(t.service.list().attachments).toEqual([]);
    expect(t.service.reservations().map((r) => r.ip)).toEqual(['10.42.7.2']);
    await t.call('NetworkDriver.DeleteEndpoint', { NetworkID: NID, EndpointID: EID });
    await t.call('IpamDriver.ReleaseAddress', { PoolID: poolId, Address: '10.42.7.2' });
    expect(t.service.reservations()).toEqual([]);
    expect(t.store.endpoints()).toEqual([]);
    // Docker retries are harmless.
    expect(await t.call('NetworkDriver.Leave', { NetworkID: NID, EndpointID: EID })).toEqual({});
    expect(await t.call('NetworkDriver.DeleteEndpoint', { NetworkID: NID, EndpointID: EID })).toEqual({});
    await t.call('NetworkDriver.DeleteNetwork', { NetworkID: NID });
    expect(t.store.network(NID)).toBeUndefined();
  });

  it('after an agent restart the endpoint is still known and Leave/DeleteEndpoint still clean up', async () => {
    const first = await setup();
    const { poolId } = await createNetwork(first);
    await startContainer(first, poolId);
    const links = first.plumber.links;
    // A new agent over the same state files; the kernel (links) outlives the process.
    const t = await setup(first.storages);
    for (const l of links) t.plumber.links.add(l);
    expect(await t.call('NetworkDriver.EndpointOperInfo', { NetworkID: NID, EndpointID: EID })).toEqual({ Value: { address: '10.42.7.2/24', mac: macForAddress('10.42.7.2'), sandboxKey: SANDBOX } });
    await t.call('NetworkDriver.Leave', { NetworkID: NID, EndpointID: EID });
    await t.call('NetworkDriver.DeleteEndpoint', { NetworkID: NID, EndpointID: EID });
    await t.call('IpamDriver.ReleaseAddress', { PoolID: poolId, Address: '10.42.7.2' });
    expect(t.plumber.links.size).toBe(0);
    expect(t.service.reservations()).toEqual([]);
    expect(t.service.list().attachments).toEqual([]);
  });

  it("a late ReleaseAddress never frees the address a newer container's endpoint holds", async () => {
    const t = await setup();
    const { poolId } = await createNetwork(t);
    const { address } = await startContainer(t, poolId, 'old');
    // The old container's namespace died; its address was freed early (the sweep), then a new container got it.
    await t.service.detach({ containerId: 'docker-k1', ifname: 'eth0' });
    await t.call('NetworkDriver.DeleteEndpoint', { NetworkID: NID, EndpointID: 'old' });
    const again = await startContainer(t, poolId, 'new', address.split('/')[0]);
    expect(again.address).toBe(address);
    // dockerd's ReleaseAddress for the old endpoint arrives only now.
    await t.call('IpamDriver.ReleaseAddress', { PoolID: poolId, Address: address.split('/')[0] });
    expect(t.service.reservations().map((r) => r.ip)).toEqual([address.split('/')[0]]);
  });

  it('refuses what it cannot serve, naming the fix', async () => {
    const t = await setup();
    expect(await t.fails('NetworkDriver.CreateNetwork', { NetworkID: NID, IPv4Data: [{ Pool: '172.18.0.0/16', Gateway: '172.18.0.1/16' }] })).toMatch(/not this host's weft subnet 10\.42\.7\.0\/24: create it with --ipam-driver weft/);
    expect(await t.fails('NetworkDriver.CreateNetwork', { NetworkID: NID, IPv4Data: [{ Pool: '10.42.7.0/24' }], IPv6Data: [{ Pool: 'fd00::/64' }] })).toMatch(/IPv4 only/);
    expect(await t.fails('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: EID, Interface: { Address: '10.42.7.9/24' } })).toMatch(/network aaaaaaaaaaaa is unknown to weft/);
    const { poolId } = await createNetwork(t);
    expect(await t.fails('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: EID, Interface: { Address: '10.42.7.9/24' } })).toMatch(/not handed out by weft's IPAM/);
    expect(await t.fails('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: EID, Interface: {} })).toMatch(/no IPv4 address/);
    expect(await t.fails('NetworkDriver.Join', { NetworkID: NID, EndpointID: EID, SandboxKey: SANDBOX })).toMatch(/endpoint eeeeeeeeeeee is unknown to weft/);
    expect(await t.fails('NetworkDriver.Join', { NetworkID: NID, EndpointID: EID, SandboxKey: 'relative' })).toMatch(/SandboxKey: "relative" is not an absolute path/);
    expect(await t.fails('NetworkDriver.CreateEndpoint', { NetworkID: '../../etc', EndpointID: EID })).toMatch(/NetworkID: .* is not a Docker ID/);
    expect(await t.fails('NetworkDriver.CreateEndpoint', [1, 2])).toMatch(/must be a JSON object/);
    // A failed Join (the kernel refused) leaves the address to Docker, which releases it next.
    await startContainer(t, poolId);
    t.plumber.failPlumb = new Error('boom');
    const a = await t.call('IpamDriver.RequestAddress', { PoolID: poolId, Options: {} });
    await t.call('NetworkDriver.CreateEndpoint', { NetworkID: NID, EndpointID: 'e2', Interface: { Address: a['Address'] } });
    expect(await t.fails('NetworkDriver.Join', { NetworkID: NID, EndpointID: 'e2', SandboxKey: SANDBOX })).toMatch(/boom/);
    expect(t.service.reservations().map((r) => r.ip)).toContain(String(a['Address']).split('/')[0]);
  });

  it('-p bindings become DNAT rules for the endpoint, gone with Revoke and DeleteEndpoint', async () => {
    const t = await setup();
    const { poolId } = await createNetwork(t);
    await startContainer(t, poolId);
    const portmap = [{ Proto: 6, IP: '', Port: 80, HostIP: '', HostPort: 8080, HostPortEnd: 8080 }, { Proto: 6, IP: '', Port: 80, HostIP: '::', HostPort: 8080, HostPortEnd: 8080 }];
    await t.call('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NID, EndpointID: EID, Options: { 'com.docker.network.portmap': portmap } });
    const last = t.applied.at(-1)!;
    expect(last[0]?.ports).toEqual([{ proto: 'tcp', port: 80, hostPort: 8080 }]);
    expect(portsScript(last)).toContain('fib daddr type local ip daddr != 127.0.0.0/8 tcp dport 8080 dnat to 10.42.7.2:80');
    await t.call('NetworkDriver.RevokeExternalConnectivity', { NetworkID: NID, EndpointID: EID });
    expect(portsScript(t.applied.at(-1)!)).toBe('table ip weft_ports {}\ndelete table ip weft_ports\n');
    expect(await t.fails('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NID, EndpointID: EID, Options: { 'com.docker.network.portmap': [{ Proto: 6, Port: 80, HostPort: 0 }] } })).toMatch(/fixed host ports only/);
    expect(await t.fails('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NID, EndpointID: EID, Options: { 'com.docker.network.portmap': [{ Proto: 1, Port: 80, HostPort: 80 }] } })).toMatch(/not tcp \(6\), udp \(17\) or sctp/);
    await t.call('NetworkDriver.ProgramExternalConnectivity', { NetworkID: NID, EndpointID: EID, Options: { 'com.docker.network.portmap': [{ Proto: 17, Port: 53, HostIP: '198.18.0.11', HostPort: 5353 }] } });
    expect(portsScript(t.applied.at(-1)!)).toContain('ip daddr 198.18.0.11 udp dport 5353 dnat to 10.42.7.2:53');
    await t.call('NetworkDriver.DeleteEndpoint', { NetworkID: NID, EndpointID: EID });
    expect(portRules(t.applied.at(-1)!)).toEqual([]);
  });
});

describe('endpoint records', () => {
  it('a corrupt file is an error, never an empty set (that would leak every veth)', async () => {
    const s: StateStorage = { where: 'x', read: async () => '{"version":1', write: async () => undefined };
    await expect(EndpointStore.open(s)).rejects.toThrow(/corrupt/);
  });
});
