/*
 * One way for every part of the addon to report a failed system call to
 * JavaScript: an Error shaped like Node's own system errors (.code the errno
 * name such as "EADDRINUSE", .errno the positive number, .syscall what
 * failed), so TypeScript handles the addon's errors as it handles dgram's or
 * fs's. Defined in weft_native.c.
 */
#ifndef WEFT_NAPI_ERRORS_H
#define WEFT_NAPI_ERRORS_H
#include <node_api.h>
/* Throws; returns NULL for the caller to return. `what` names the part ("udp forwarder"). */
napi_value weft_throw_errno(napi_env env, int err, const char *syscall, const char *what);
#endif
