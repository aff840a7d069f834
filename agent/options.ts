// The flags of every weft command, in one place. Commands share the etcd and
// host flag groups, so `weft leases` and `weft leave` reach the same etcd the
// agent does with the same flags and WEFT_* variables.

import type { FlagSpec, FlagValues } from './flags.js';
import type { EtcdOptions } from '../ipam/etcd-client.js';
import { cniInstallFlags } from './cni-install.js';

export const etcdFlags: readonly FlagSpec[] = [
  { name: 'etcd-endpoints', type: 'list', default: ['http://127.0.0.1:2379'], help: 'etcd client URLs, comma-separated' },
  { name: 'etcd-prefix', type: 'string', default: '/weft/network', help: 'etcd key prefix of the network; /coreos.com/network reads a flannel network' },
  { name: 'etcd-cafile', type: 'string', help: 'CA certificate that signed etcd\'s server certificate (TLS)' },
  { name: 'etcd-certfile', type: 'string', help: 'client certificate for etcd (TLS client auth)' },
  { name: 'etcd-keyfile', type: 'string', help: 'private key of --etcd-certfile' },
];

export const hostFlags: readonly FlagSpec[] = [
  { name: 'iface', type: 'string', help: 'underlay interface (its first IPv4 address is the public IP, its MTU sizes the overlay); default: the default route\'s interface' },
  { name: 'public-ip', type: 'string', help: 'IP other hosts use to reach this one (default: the first IPv4 address of --iface)' },
  { name: 'run-dir', type: 'string', default: '/run/weft', help: 'runtime directory (API socket, subnet.env); one per agent' },
  { name: 'state-dir', type: 'string', default: '/var/lib/weft', help: 'persistent state (the last subnet, address pools); survives restarts' },
  { name: 'subnet-file', type: 'string', defaultText: '<run-dir>/subnet.env', help: 'where to write subnet.env (WEFT_* and FLANNEL_* variables)' },
];

/** For the commands that only talk to the local agent. */
export const runDirFlag: FlagSpec = hostFlags.find((f) => f.name === 'run-dir')!;

export const logFlags: readonly FlagSpec[] = [
  { name: 'log-level', type: 'string', default: 'info', help: 'trace, debug, info, warn, error or fatal' },
];

/** The DNS server of `weft agent` (agent/components/dns.ts). */
export const dnsFlags: readonly FlagSpec[] = [
  { name: 'dns-listen', type: 'string', default: 'gateway', help: 'where the DNS server listens, UDP and TCP: "gateway" (weft0\'s address, port 53), "gateway:PORT", or ADDRESS:PORT,...; empty turns it off' },
  { name: 'dns-domain', type: 'string', default: 'weft.local.', help: 'the cluster domain: containers resolve NAME.<domain> (and NAME through the search domain)' },
  { name: 'dns-upstream', type: 'list', default: [], defaultText: 'the nameservers of /etc/resolv.conf', help: 'resolvers for every other name, ADDRESS[:PORT] comma-separated' },
  { name: 'dns-ttl', type: 'int', default: 5, min: 0, max: 3600, help: 'TTL in seconds of cluster answers (short: containers come and go)' },
  { name: 'dns-upstream-timeout', type: 'int', default: 2000, min: 100, max: 30000, help: 'milliseconds to wait for the upstream resolvers before answering SERVFAIL' },
];

export const agentFlags: readonly FlagSpec[] = [
  ...etcdFlags,
  ...hostFlags,
  { name: 'healthz-listen', type: 'string', default: '127.0.0.1:8471', help: 'address:port of /healthz and /readyz; empty disables' },
  { name: 'lease-ttl', type: 'int', default: 86400, min: 5, max: 9_000_000_000, help: 'TTL in seconds of the etcd lease that keeps the subnet (kept alive while the agent runs)' },
  { name: 'watch-check-interval', type: 'int', default: 30, min: 1, max: 3600, help: 'seconds between checks that the lease watch is still delivering' },
  { name: 'resync-interval', type: 'int', default: 30, min: 1, max: 86400, help: 'seconds between full data-plane reconciles, which heal hand-made changes (a deleted route comes back), and attachment sweeps, which free what no runtime deleted' },
  { name: 'lease-grace', type: 'int', default: 5, min: 0, max: 3600, help: 'seconds a remote host stays programmed after its lease key vanished from etcd, so a key its owner re-creates (deleted by hand, revoked) costs no traffic; 0 removes at once' },
  { name: 'ip-masq', type: 'bool', default: false, help: 'masquerade traffic leaving the overlay network with nftables (table ip weft_masq); traffic inside it keeps its source' },
  { name: 'release-on-exit', type: 'bool', default: false, help: 'give the subnet back on SIGTERM/SIGINT instead of keeping it for the restart' },
  { name: 'gossip-port', type: 'int', default: 7946, min: 1, max: 65535, help: 'UDP and TCP port of gossip (membership and DNS records), bound to the public IP only; published in the lease as BackendData.GossipPort' },
  { name: 'key-file', type: 'string', help: 'base64 keys of 32 bytes, one per line (`weft keygen`): the first seals, all open; re-read when it changes. Default: the cluster key in etcd at <prefix>/cluster-key' },
  { name: 'install-cni', type: 'bool', default: false, help: 'once ready, install the CNI plugin and conflist (as flannel\'s DaemonSet does; see the --cni-* flags)' },
  ...dnsFlags,
  ...cniInstallFlags,
  { name: 'cnm-socket', type: 'string', default: '/run/docker/plugins/weft.sock', help: 'where to serve Docker\'s network and IPAM plugin (docker network create -d weft --ipam-driver weft), once ready; empty disables' },
  { name: 'docker-socket', type: 'string', default: '/var/run/docker.sock', help: 'Docker Engine API socket, read for the names of containers on weft networks (retried until dockerd answers); empty: no Docker names in weft\'s DNS' },
  ...logFlags,
];

export function etcdOptionsFrom(v: FlagValues): EtcdOptions {
  return {
    endpoints: v['etcd-endpoints'] as string[],
    caFile: v['etcd-cafile'] as string | undefined,
    certFile: v['etcd-certfile'] as string | undefined,
    keyFile: v['etcd-keyfile'] as string | undefined,
  };
}

export function subnetFileFrom(v: FlagValues): string {
  return (v['subnet-file'] as string | undefined) ?? `${v['run-dir'] as string}/subnet.env`;
}
