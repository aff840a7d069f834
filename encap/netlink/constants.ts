// The numbers of the rtnetlink ABI that weft uses, copied from the Linux UAPI
// headers (linux/netlink.h, rtnetlink.h, if_link.h, if_addr.h, neighbour.h).
// They are kernel ABI and never change meaning, so they live here as plain
// constants instead of coming from a binding generated at build time.

export const NLM_F = {
  REQUEST: 0x1,
  MULTI: 0x2,
  ACK: 0x4,
  DUMP_INTR: 0x10,
  DUMP: 0x300,
  REPLACE: 0x100,
  EXCL: 0x200,
  CREATE: 0x400,
  APPEND: 0x800,
  // On NLMSG_ERROR replies:
  CAPPED: 0x100,
  ACK_TLVS: 0x200,
} as const;

export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3, OVERRUN: 4 } as const;

export const RTM = {
  NEWLINK: 16,
  DELLINK: 17,
  GETLINK: 18,
  SETLINK: 19,
  NEWADDR: 20,
  DELADDR: 21,
  GETADDR: 22,
  NEWROUTE: 24,
  DELROUTE: 25,
  GETROUTE: 26,
  NEWNEIGH: 28,
  DELNEIGH: 29,
  GETNEIGH: 30,
} as const;

export const AF = { UNSPEC: 0, INET: 2, BRIDGE: 7, INET6: 10 } as const;

export const NLMSGERR_ATTR = { MSG: 1, OFFS: 2 } as const;

export const IFF_UP = 0x1;

export const IFLA = {
  ADDRESS: 1,
  IFNAME: 3,
  MTU: 4,
  LINK: 5,
  MASTER: 10,
  OPERSTATE: 16,
  LINKINFO: 18,
  NET_NS_FD: 28,
  EXT_MASK: 29,
} as const;

export const IFLA_INFO = { KIND: 1, DATA: 2 } as const;
export const VETH_INFO_PEER = 1;

export const IFLA_VXLAN = {
  ID: 1,
  LINK: 3,
  LOCAL: 4,
  TTL: 5,
  LEARNING: 7,
  PORT: 15,
} as const;

export const IFA = { ADDRESS: 1, LOCAL: 2, LABEL: 3, FLAGS: 8 } as const;

export const RTA = {
  DST: 1,
  OIF: 4,
  GATEWAY: 5,
  PRIORITY: 6,
  PREFSRC: 7,
  TABLE: 15,
} as const;

export const RT_TABLE_MAIN = 254;
export const RTN_UNICAST = 1;
export const RTNH_F_ONLINK = 0x4;
export const RT_SCOPE = { UNIVERSE: 0, LINK: 253, HOST: 254, NOWHERE: 255 } as const;
export const RTPROT = { UNSPEC: 0, KERNEL: 2, BOOT: 3, STATIC: 4 } as const;

/**
 * weft's own route protocol number: routes weft installs carry it, so a
 * reconciler can list exactly the routes it owns (`ip route show proto 87`)
 * and never touch a route that a human or another daemon added. 87 ('W') is
 * not claimed in iproute2's rt_protos.
 */
export const RTPROT_WEFT = 87;

export const NDA = { DST: 1, LLADDR: 2, PORT: 6, VNI: 7, IFINDEX: 8, MASTER: 9 } as const;
export const NUD_PERMANENT = 0x80;
export const NTF = { SELF: 0x2, MASTER: 0x4 } as const;

/** Every header and attribute is padded to this. */
export const NLMSG_ALIGNTO = 4;
export const NLMSG_HDRLEN = 16;
