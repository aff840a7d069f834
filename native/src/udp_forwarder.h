/* The udp backend's native data path (udp_forwarder.c), registered by weft_native.c. */
#ifndef WEFT_UDP_FORWARDER_H
#define WEFT_UDP_FORWARDER_H
#include <node_api.h>
napi_value udp_forwarder_open(napi_env env, napi_callback_info info);
#endif
