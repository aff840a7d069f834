/*
 * weft_native: the few syscalls Node cannot make for the data plane.
 *
 *  - A NETLINK_ROUTE socket created inside another network namespace. The
 *    calling thread setns()es into the target namespace only for the socket()
 *    call and then straight back; a netlink socket keeps the namespace it was
 *    born in, so every later request on it targets that namespace. This runs on
 *    the JS thread synchronously: setns + socket + setns is a few microseconds,
 *    and doing it on a thread-pool thread would risk leaving a pool thread in a
 *    foreign namespace for unrelated fs/dns work. If the thread cannot get back
 *    to its own namespace we abort(): carrying on would silently point every
 *    later socket of this thread at the wrong network.
 *  - Non-blocking netlink send/recv plus a uv_poll watcher, so replies arrive as
 *    events on the Node loop instead of a blocked thread. The rtnetlink message
 *    codec itself is TypeScript (encap/netlink/), where it is unit-testable.
 *  - A TUN/TAP device (/dev/net/tun + TUNSETIFF), optionally inside a netns the
 *    same way (the device joins the namespace of the thread that open()s it).
 *    Reading a TUN fd with fs.read() parks one libuv thread-pool thread per
 *    pending read (the pool has 4 by default, shared with fs, dns.lookup and
 *    zlib), so a forwarder should ask for nonBlock and read on readiness (the
 *    same watch() used for netlink) rather than keep fs.read() pending.
 *
 * Plain C over Node-API: builds offline from Node's headers, ABI-stable across
 * Node versions, no npm dependencies.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>

#include <node_api.h>
#include <uv.h>

#include "dns_fastpath.h"
#include "napi_errors.h"
#include "udp_forwarder.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif

/* Bail out of a napi_value-returning function when a Node-API call fails;
 * Node-API has already set a pending exception in that case. */
#define NAPI_OK(call)                   \
  do {                                  \
    if ((call) != napi_ok) return NULL; \
  } while (0)

/* See napi_errors.h. */
napi_value weft_throw_errno(napi_env env, int err, const char *syscall, const char *what) {
  char msg[256];
  const char *name = uv_err_name(-err);
  snprintf(msg, sizeof msg, "%s: %s failed: %s (%s)", what, syscall, strerror(err), name);
  napi_value code, text, error, num, sc;
  if (napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code) != napi_ok ||
      napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text) != napi_ok ||
      napi_create_error(env, code, text, &error) != napi_ok)
    return NULL;
  if (napi_create_int32(env, err, &num) == napi_ok) napi_set_named_property(env, error, "errno", num);
  if (napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc) == napi_ok)
    napi_set_named_property(env, error, "syscall", sc);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
  return NULL;
}

static int arg_int(napi_env env, napi_value v, int32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) return -1;
  return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

static int get_bool_prop(napi_env env, napi_value obj, const char *key) {
  bool has = false, val = false;
  napi_value v;
  if (napi_has_named_property(env, obj, key, &has) != napi_ok || !has) return 0;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return 0;
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_boolean) return 0;
  napi_get_value_bool(env, v, &val);
  return val ? 1 : 0;
}

/* obj[name] = fn bound to data. Returns 0 on success. */
static int set_method(napi_env env, napi_value obj, const char *name, napi_callback cb, void *data) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, data, &fn) != napi_ok) return -1;
  return napi_set_named_property(env, obj, name, fn) == napi_ok ? 0 : -1;
}

/* { fd, [key]: value } for a freshly opened fd; closes the fd if the object
 * (or value, whose creation status is vst) cannot be made, so a Node-API
 * failure never leaks it. */
static napi_value fd_result(napi_env env, int fd, const char *key, napi_status vst, napi_value value) {
  napi_value out, vfd;
  if (vst != napi_ok || napi_create_object(env, &out) != napi_ok || napi_create_int32(env, fd, &vfd) != napi_ok ||
      napi_set_named_property(env, out, "fd", vfd) != napi_ok || napi_set_named_property(env, out, key, value) != napi_ok) {
    close(fd);
    return NULL;
  }
  return out;
}

/* ---- namespace switching --------------------------------------------- */

/* Enters the namespace behind nsfd (no-op for nsfd < 0), saving an fd to the
 * thread's current one in *saved. Returns 0 or a positive errno. */
static int netns_enter(int nsfd, int *saved) {
  *saved = -1;
  if (nsfd < 0) return 0;
  /* thread-self, not self: setns() is per thread and this may be a worker. */
  int s = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (s < 0) return errno;
  if (setns(nsfd, CLONE_NEWNET) < 0) {
    int e = errno;
    close(s);
    return e;
  }
  *saved = s;
  return 0;
}

static void netns_leave(int saved) {
  if (saved < 0) return;
  if (setns(saved, CLONE_NEWNET) < 0) {
    fprintf(stderr, "weft_native: FATAL: cannot return thread to its network namespace: %s\n", strerror(errno));
    abort();
  }
  close(saved);
}

/* ---- netlink socket --------------------------------------------------- */

/* netlinkOpen(nsFd, rcvbufBytes) -> { fd, portId } */
static napi_value netlink_open(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t nsfd, rcvbuf;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || arg_int(env, argv[0], &nsfd) || arg_int(env, argv[1], &rcvbuf))
    return throw_type(env, "netlinkOpen(nsFd: number, rcvbuf: number)");

  int saved, fd, err = netns_enter(nsfd, &saved);
  if (err) return weft_throw_errno(env, err, "setns", "open netlink socket in netns");
  fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  err = fd < 0 ? errno : 0;
  netns_leave(saved);
  if (fd < 0) return weft_throw_errno(env, err, "socket", "open netlink socket");

  if (rcvbuf > 0) {
    /* FORCE ignores net.core.rmem_max (we are root); plain SO_RCVBUF is the
     * unprivileged fallback and gets clamped. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) < 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  }
  int one = 1;
  /* Extended ACKs carry the kernel's own explanation ("VXLAN: ..."); capped
   * ACKs keep error replies from echoing our whole request (receive buffer). */
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);

  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  socklen_t len = sizeof sa;
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
    err = errno;
    close(fd);
    return weft_throw_errno(env, err, "bind", "open netlink socket");
  }

  napi_value vport;
  napi_status vst = napi_create_uint32(env, sa.nl_pid, &vport);
  return fd_result(env, fd, "portId", vst, vport);
}

/* netlinkSend(fd, buf) -> bytes sent. To the kernel this never waits for
 * buffer space: rtnetlink handles the request inside sendmsg(). */
static napi_value netlink_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t fd;
  void *data;
  size_t len;
  bool isbuf = false;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || arg_int(env, argv[0], &fd) || napi_is_buffer(env, argv[1], &isbuf) != napi_ok || !isbuf)
    return throw_type(env, "netlinkSend(fd: number, buf: Buffer)");
  NAPI_OK(napi_get_buffer_info(env, argv[1], &data, &len));

  struct sockaddr_nl sa;
  memset(&sa, 0, sizeof sa);
  sa.nl_family = AF_NETLINK;
  ssize_t n;
  do {
    n = sendto(fd, data, len, 0, (struct sockaddr *)&sa, sizeof sa);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return weft_throw_errno(env, errno, "sendto", "netlink send");
  napi_value out;
  NAPI_OK(napi_create_int64(env, n, &out));
  return out;
}

/* netlinkRecv(fd) -> Buffer (one datagram) | null when nothing is queued.
 * Peeks the size first so a large dump chunk is never truncated. */
static napi_value netlink_recv(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], out;
  int32_t fd;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || arg_int(env, argv[0], &fd)) return throw_type(env, "netlinkRecv(fd: number)");

  ssize_t size;
  do {
    size = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
  } while (size < 0 && errno == EINTR);
  if (size < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      NAPI_OK(napi_get_null(env, &out));
      return out;
    }
    return weft_throw_errno(env, errno, "recv", "netlink receive");
  }
  void *data;
  NAPI_OK(napi_create_buffer(env, size > 0 ? (size_t)size : 1, &data, &out));
  ssize_t n;
  do {
    n = recv(fd, data, size > 0 ? (size_t)size : 1, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return weft_throw_errno(env, errno, "recv", "netlink receive");
  if (n != size) {
    napi_value sliced;
    /* Only when a datagram raced the peek; hand back what was read. */
    NAPI_OK(napi_create_buffer_copy(env, (size_t)n, data, NULL, &sliced));
    return sliced;
  }
  return out;
}

/* ---- readiness watcher ---------------------------------------------- */

typedef struct {
  uv_poll_t poll; /* first member: the handle pointer is the struct pointer */
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int stopped;
  int owners; /* the uv handle and the JS object; freed when both let go */
} watcher_t;

static void watcher_release(watcher_t *w) {
  if (--w->owners == 0) free(w);
}

static void watcher_closed(uv_handle_t *h) { watcher_release((watcher_t *)h); }

static void watcher_stop(watcher_t *w) {
  if (w->stopped) return;
  w->stopped = 1;
  uv_poll_stop(&w->poll);
  napi_delete_reference(w->env, w->callback);
  napi_async_destroy(w->env, w->async);
  uv_close((uv_handle_t *)&w->poll, watcher_closed);
}

static void watcher_cleanup_hook(void *arg) { watcher_stop((watcher_t *)arg); }

static void watcher_stop_unhooked(napi_env env, watcher_t *w);

static void watcher_event(uv_poll_t *h, int status, int events) {
  watcher_t *w = (watcher_t *)h;
  if (w->stopped) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, arg, result;
  if (napi_get_reference_value(env, w->callback, &cb) == napi_ok && cb != NULL &&
      napi_get_global(env, &recv) == napi_ok) { /* MakeCallback needs an object receiver */
    if (status < 0)
      napi_create_string_utf8(env, uv_err_name(status), NAPI_AUTO_LENGTH, &arg);
    else
      napi_get_null(env, &arg);
    if (napi_make_callback(env, w->async, recv, cb, 1, &arg, &result) == napi_pending_exception) {
      napi_value exc;
      /* Surface a throwing JS handler as an uncaught exception, like Node's
       * own handles do, rather than swallowing it here. Stop first: the poll
       * is level-triggered, and a handler that throws before draining the fd
       * would otherwise be called again at once, forever. */
      watcher_stop_unhooked(env, w);
      if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
    }
  }
  napi_close_handle_scope(env, scope);
}

static watcher_t *watcher_of(napi_env env, napi_callback_info info) {
  void *data = NULL;
  if (napi_get_cb_info(env, info, NULL, NULL, NULL, &data) != napi_ok) return NULL;
  return (watcher_t *)data;
}

static void watcher_stop_unhooked(napi_env env, watcher_t *w) {
  if (w->stopped) return;
  napi_remove_env_cleanup_hook(env, watcher_cleanup_hook, w);
  watcher_stop(w);
}

static napi_value watcher_stop_js(napi_env env, napi_callback_info info) {
  watcher_t *w = watcher_of(env, info);
  if (w) watcher_stop_unhooked(env, w);
  return NULL;
}

/* The JS object went away: a watcher nobody can stop any more stops itself. */
static void watcher_finalize(napi_env env, void *data, void *hint) {
  watcher_t *w = (watcher_t *)data;
  watcher_stop_unhooked(env, w);
  watcher_release(w);
}

static napi_value watcher_ref_js(napi_env env, napi_callback_info info) {
  watcher_t *w = watcher_of(env, info);
  if (w && !w->stopped) uv_ref((uv_handle_t *)&w->poll);
  return NULL;
}

static napi_value watcher_unref_js(napi_env env, napi_callback_info info) {
  watcher_t *w = watcher_of(env, info);
  if (w && !w->stopped) uv_unref((uv_handle_t *)&w->poll);
  return NULL;
}

/* watch(fd, onReadable(err: string | null)) -> { stop(), ref(), unref() }.
 * Level-triggered: the callback must drain the fd. Stop before closing fd. */
static napi_value watch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], out;
  int32_t fd;
  napi_valuetype t;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2 || arg_int(env, argv[0], &fd) || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_function)
    return throw_type(env, "watch(fd: number, onReadable: function)");

  uv_loop_t *loop;
  NAPI_OK(napi_get_uv_event_loop(env, &loop));
  watcher_t *w = calloc(1, sizeof *w);
  if (!w) return weft_throw_errno(env, ENOMEM, "calloc", "watch");
  w->env = env;
  w->owners = 1; /* the uv handle; the JS object joins below */
  int rc = uv_poll_init(loop, &w->poll, fd);
  if (rc < 0) {
    free(w);
    return weft_throw_errno(env, -rc, "uv_poll_init", "watch");
  }
  napi_value name;
  if (napi_create_reference(env, argv[1], 1, &w->callback) != napi_ok ||
      napi_create_string_utf8(env, "weft:watch", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_async_init(env, NULL, name, &w->async) != napi_ok) {
    uv_close((uv_handle_t *)&w->poll, watcher_closed);
    return NULL;
  }
  rc = uv_poll_start(&w->poll, UV_READABLE, watcher_event);
  if (rc < 0) {
    watcher_stop(w);
    return weft_throw_errno(env, -rc, "uv_poll_start", "watch");
  }
  /* A worker or env teardown must not leave a live handle on a dying loop. */
  napi_add_env_cleanup_hook(env, watcher_cleanup_hook, w);

  NAPI_OK(napi_create_object(env, &out));
  w->owners++;
  if (napi_add_finalizer(env, out, w, watcher_finalize, NULL, NULL) != napi_ok) {
    w->owners--;
    watcher_stop_unhooked(env, w);
    return NULL;
  }
  if (set_method(env, out, "stop", watcher_stop_js, w) || set_method(env, out, "ref", watcher_ref_js, w) ||
      set_method(env, out, "unref", watcher_unref_js, w))
    return NULL; /* the finalizer stops the poll when `out` is collected */
  return out;
}

/* ---- TUN/TAP ------------------------------------------------------------ */

/* tunOpen(name, { tap, multiQueue, nonBlock, persist }, nsFd) -> { fd, name }.
 * name "" lets the kernel pick (tun%d). persist (TUNSETPERSIST) keeps the
 * device, and the routes through it, when the last fd closes (a killed agent),
 * so a restart attaches to the same device and changes nothing. */
static napi_value tun_open(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t nsfd;
  char name[IFNAMSIZ];
  size_t namelen = 0;
  napi_valuetype t;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3 || napi_typeof(env, argv[1], &t) != napi_ok || t != napi_object || arg_int(env, argv[2], &nsfd) ||
      napi_get_value_string_utf8(env, argv[0], name, sizeof name, &namelen) != napi_ok)
    return throw_type(env, "tunOpen(name: string, opts: object, nsFd: number)");
  if (namelen >= IFNAMSIZ - 1) return weft_throw_errno(env, EINVAL, "TUNSETIFF", "open tun: name too long");

  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = (get_bool_prop(env, argv[1], "tap") ? IFF_TAP : IFF_TUN) | IFF_NO_PI;
  if (get_bool_prop(env, argv[1], "multiQueue")) ifr.ifr_flags |= IFF_MULTI_QUEUE;
  int flags = O_RDWR | O_CLOEXEC | (get_bool_prop(env, argv[1], "nonBlock") ? O_NONBLOCK : 0);
  memcpy(ifr.ifr_name, name, namelen);

  int saved, fd, err = netns_enter(nsfd, &saved);
  if (err) return weft_throw_errno(env, err, "setns", "open tun in netns");
  /* Both calls inside: the device is created in the namespace of the open()
   * file, and TUNSETIFF is what creates it. */
  fd = open("/dev/net/tun", flags);
  const char *failed = "open";
  err = fd < 0 ? errno : 0;
  if (fd >= 0 && ioctl(fd, TUNSETIFF, &ifr) < 0) {
    err = errno;
    failed = "ioctl(TUNSETIFF)";
    close(fd);
    fd = -1;
  }
  if (fd >= 0 && get_bool_prop(env, argv[1], "persist") && ioctl(fd, TUNSETPERSIST, 1) < 0) {
    err = errno;
    failed = "ioctl(TUNSETPERSIST)";
    close(fd);
    fd = -1;
  }
  netns_leave(saved);
  if (fd < 0) return weft_throw_errno(env, err, failed, "open tun");

  napi_value vname;
  napi_status vst = napi_create_string_utf8(env, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ), &vname);
  return fd_result(env, fd, "name", vst, vname);
}

/* closeFd(fd): for callers that own a raw fd from this module. */
static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  NAPI_OK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || arg_int(env, argv[0], &fd)) return throw_type(env, "closeFd(fd: number)");
  if (close(fd) < 0 && errno != EINTR) return weft_throw_errno(env, errno, "close", "close fd");
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"netlinkOpen", NULL, netlink_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"netlinkSend", NULL, netlink_send, NULL, NULL, NULL, napi_enumerable, NULL},
      {"netlinkRecv", NULL, netlink_recv, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watch", NULL, watch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tunOpen", NULL, tun_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"udpForwarderOpen", NULL, udp_forwarder_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dnsFastpathOpen", NULL, dns_fastpath_open, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_OK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
