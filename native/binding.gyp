# weft's one native addon: the few syscalls Node cannot make (setns around
# socket()/open(), raw AF_NETLINK I/O, TUNSETIFF) and the udp backend's data
# path (udp_forwarder.c: TUN <-> UDP on its own threads, sealed with the
# OpenSSL libcrypto that Node itself exports, so nothing extra is linked) and the DNS
# server's UDP fast path (dns_fastpath.c: recvmmsg/sendmmsg on its own thread). Plain C over Node-API so it
# builds offline from Node's own headers (npm's `nodedir`) with no npm deps.
{
  "targets": [
    {
      "target_name": "weft_native",
      "sources": ["src/weft_native.c", "src/udp_forwarder.c", "src/dns_fastpath.c"],
      "cflags": ["-std=gnu11", "-pthread", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"]
    }
  ]
}
