/* The DNS server's native UDP fast path (dns_fastpath.c), registered by weft_native.c. */
#ifndef WEFT_DNS_FASTPATH_H
#define WEFT_DNS_FASTPATH_H
#include <node_api.h>
napi_value dns_fastpath_open(napi_env env, napi_callback_info info);
#endif
