// Public surface of encap/netlink: the kernel access layer of the data plane.
// Everything else in weft imports from here, not from the files behind it.

export { Netlink, openNetlink, type BulkOp, type OpenOptions } from './netlink.js';
export { openTun, watchFd, type TunDevice, type TunOptions } from './tun.js';
export { isExists, isNotFound } from './errors.js';
export { RTPROT_WEFT, RT_SCOPE, RT_TABLE_MAIN, NUD_PERMANENT } from './constants.js';
export type * from './types.js';
