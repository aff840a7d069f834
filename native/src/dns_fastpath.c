/*
 * The DNS server's UDP fast path: the socket on LISTEN:53 is read and written
 * by a thread of its own with recvmmsg/sendmmsg, so a repeated query for a
 * cluster name never passes through the Node event loop (Node's dgram costs
 * one syscall and several JS callbacks per datagram; that, not the lookup,
 * kept the JS server below dnsmasq).
 *
 * The thread answers only what it is sure of; everything else goes to
 * TypeScript (agent/dns/dns-server.ts), which stays the one place that
 * decides answers:
 *   - a strict parse: a query (QR 0, opcode 0), exactly one question of class
 *     IN, no answer/authority records, at most one additional record which is
 *     an EDNS0 OPT (version 0, root owner, options only COOKIE), nothing after
 *     it; any other shape, however odd, goes to JS (which answers FORMERR,
 *     NOTIMP, BADVERS... or drops);
 *   - the client must be inside one of the networks TS pushed (setAllowed);
 *     anyone else goes to JS, which answers REFUSED;
 *   - the table: key = the question's name bytes exactly as asked (the JS
 *     answers echo the name as asked in their owner names, so keying on the
 *     exact case keeps our replies byte for byte what JS would send) + qtype
 *     + whether EDNS is present. A value is the cycle of replies JS decided
 *     for that query (one per rotation of a service's addresses), served in
 *     turn; the query's ID and RD bit are written in. A reply longer than
 *     this client's UDP limit goes to JS (which truncates).
 * JS fills the table lazily (put() after it decided a cacheable reply) and
 * clears it whenever the record set changes. Misses reach JS through a
 * threadsafe function with the datagram and the client address; JS replies
 * through send() on the same socket, so the source is LISTEN:53.
 *
 * Bounded: at most MAX_ENTRIES entries and MAX_BYTES of replies (a full
 * table is emptied, as the JS cache does), at most MISS_QUEUE datagrams
 * waiting for JS (more are dropped and counted).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <node_api.h>

#include "napi_errors.h"
#include "dns_fastpath.h"

#define BATCH 64
#define MAX_DGRAM 4096
/* A receive slot holds the largest UDP payload, so a datagram the table cannot serve reaches JS whole, whatever its size. */
#define RX_SLOT 65536
#define MAX_NAME 255
#define KEY_MAX (MAX_NAME + 5)
#define MAX_CYCLE 32
#define MAX_REPLY 4096
#define MAX_ENTRIES 20000
#define MAX_BYTES (32u << 20)
#define BUCKETS 32768
#define MAX_NETS 32
#define MISS_QUEUE 4096

enum { C_HITS, C_NXDOMAIN, C_MISSES, C_DROP_QUEUE, C_DROP_SEND, C_COUNT };
static const char *counter_names[C_COUNT] = {"hits", "nxdomain", "misses", "dropMissQueue", "dropSendError"};

typedef struct entry {
  struct entry *next;
  uint32_t hash;
  uint16_t keylen;
  uint16_t n;
  uint16_t maxlen;
  uint8_t nx;
  atomic_uint turn;
  uint8_t key[KEY_MAX];
  uint16_t len[MAX_CYCLE];
  uint8_t *reply[MAX_CYCLE]; /* point into the same allocation */
} entry_t;

typedef struct {
  uint32_t net, mask; /* host order */
} net_t;

typedef struct {
  int sock, stopfd;
  pthread_t th;
  int started, closed;
  napi_threadsafe_function tsfn;
  /* Node finalizes the threadsafe function on its own schedule (after release, or at
   * environment teardown, in either order with the object's finalizer): whichever of
   * the two runs last frees this struct. Both run on the JS thread. */
  int tsfn_alive, wrapper_gone;
  pthread_rwlock_t lock;
  entry_t **buckets;
  size_t entries, bytes;
  int nnets;
  net_t nets[MAX_NETS];
  atomic_uint_fast64_t c[C_COUNT];
} dnsfp_t;

typedef struct {
  uint32_t ip; /* network order */
  uint16_t port; /* network order */
  uint16_t len;
  uint8_t data[];
} miss_t;

typedef struct {
  int name_len; /* wire bytes of the qname, from offset 12 */
  int edns;
  int limit; /* the client's UDP limit */
} query_t;

static inline void count(dnsfp_t *d, int which) { atomic_fetch_add_explicit(&d->c[which], 1, memory_order_relaxed); }
static inline uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* 0 and *q filled when the datagram is a query of the one shape served here; -1 otherwise. */
static int parse_query(const uint8_t *p, int len, query_t *q) {
  if (len < 12 + 5 || len > MAX_DGRAM) return -1;
  if ((p[2] & 0x80) || ((p[2] >> 3) & 0xf) != 0) return -1; /* a response, or not opcode QUERY */
  if (get16(p + 4) != 1 || get16(p + 6) != 0 || get16(p + 8) != 0 || get16(p + 10) > 1) return -1;
  int i = 12;
  for (;;) {
    if (i >= len) return -1;
    int l = p[i];
    if (l == 0) break;
    if (l > 63) return -1; /* compression pointers and the reserved label types */
    i += 1 + l;
    if (i - 12 + 1 > MAX_NAME) return -1;
  }
  i++;
  q->name_len = i - 12;
  if (i + 4 > len || get16(p + i + 2) != 1) return -1; /* class IN only */
  i += 4;
  q->edns = 0;
  q->limit = 512;
  if (get16(p + 10) == 1) {
    /* root owner, type OPT, class = payload, ttl = ext rcode 0 | version 0 | flags, rdlength */
    if (i + 11 > len || p[i] != 0 || get16(p + i + 1) != 41 || p[i + 5] != 0 || p[i + 6] != 0) return -1;
    int payload = get16(p + i + 3);
    int rdlen = get16(p + i + 9);
    i += 11;
    if (i + rdlen != len) return -1;
    for (int o = i; o < len;) {
      if (o + 4 > len || get16(p + o) != 10) return -1; /* COOKIE only: other options JS may parse */
      int ol = get16(p + o + 2);
      if (ol < 8 || ol > 40 || o + 4 + ol > len) return -1;
      o += 4 + ol;
    }
    i = len;
    q->edns = 1;
    q->limit = payload < 512 ? 512 : payload > 4096 ? 4096 : payload;
  }
  return i == len ? 0 : -1;
}

static int make_key(const uint8_t *p, const query_t *q, uint8_t *key, uint32_t *hash) {
  int n = q->name_len + 2;
  memcpy(key, p + 12, (size_t)n); /* name + qtype */
  key[n++] = (uint8_t)q->edns;
  uint32_t h = 2166136261u;
  for (int i = 0; i < n; i++) h = (h ^ key[i]) * 16777619u;
  *hash = h;
  return n;
}

static entry_t *lookup(dnsfp_t *d, const uint8_t *key, int keylen, uint32_t hash) {
  for (entry_t *e = d->buckets[hash % BUCKETS]; e; e = e->next)
    if (e->hash == hash && e->keylen == keylen && memcmp(e->key, key, (size_t)keylen) == 0) return e;
  return NULL;
}

static void table_clear(dnsfp_t *d) {
  for (size_t b = 0; b < BUCKETS; b++) {
    entry_t *e = d->buckets[b];
    while (e) {
      entry_t *next = e->next;
      free(e);
      e = next;
    }
    d->buckets[b] = NULL;
  }
  d->entries = 0;
  d->bytes = 0;
}

static int allowed(const dnsfp_t *d, uint32_t ip_host) {
  for (int i = 0; i < d->nnets; i++)
    if ((ip_host & d->nets[i].mask) == d->nets[i].net) return 1;
  return 0;
}

static void to_js(dnsfp_t *d, const uint8_t *p, int len, const struct sockaddr_in *from) {
  count(d, C_MISSES);
  miss_t *m = malloc(sizeof *m + (size_t)len);
  if (!m) {
    count(d, C_DROP_QUEUE);
    return;
  }
  m->ip = from->sin_addr.s_addr;
  m->port = from->sin_port;
  m->len = (uint16_t)len;
  memcpy(m->data, p, (size_t)len);
  if (napi_call_threadsafe_function(d->tsfn, m, napi_tsfn_nonblocking) != napi_ok) {
    free(m);
    count(d, C_DROP_QUEUE);
  }
}

static void *worker(void *arg) {
  dnsfp_t *d = arg;
  uint8_t(*in)[RX_SLOT] = malloc(sizeof(uint8_t[BATCH][RX_SLOT]));
  uint8_t(*out)[MAX_REPLY] = malloc(sizeof(uint8_t[BATCH][MAX_REPLY]));
  if (!in || !out) {
    free(in);
    free(out);
    return NULL;
  }
  struct mmsghdr rm[BATCH], sm[BATCH];
  struct iovec riov[BATCH], siov[BATCH];
  struct sockaddr_in from[BATCH];
  struct pollfd pf[2] = {{.fd = d->stopfd, .events = POLLIN}, {.fd = d->sock, .events = POLLIN}};
  for (;;) {
    for (int i = 0; i < BATCH; i++) {
      riov[i] = (struct iovec){.iov_base = in[i], .iov_len = sizeof in[i]};
      rm[i].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof from[i], .msg_iov = &riov[i], .msg_iovlen = 1};
    }
    int n = recvmmsg(d->sock, rm, BATCH, MSG_DONTWAIT, NULL);
    if (n <= 0) {
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        /* An ICMP error queued on the socket and the like: it was reported by this call; carry on. */
      }
      int r = poll(pf, 2, -1);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 || pf[0].revents || (pf[1].revents & POLLNVAL)) break;
      continue;
    }

    int k = 0;
    pthread_rwlock_rdlock(&d->lock);
    for (int i = 0; i < n; i++) {
      const uint8_t *p = in[i];
      int len = (int)rm[i].msg_len;
      query_t q;
      uint8_t key[KEY_MAX];
      uint32_t hash;
      entry_t *e = NULL;
      if (rm[i].msg_hdr.msg_namelen == sizeof(struct sockaddr_in) && !(rm[i].msg_hdr.msg_flags & MSG_TRUNC) &&
          allowed(d, ntohl(from[i].sin_addr.s_addr)) && parse_query(p, len, &q) == 0) {
        int kl = make_key(p, &q, key, &hash);
        e = lookup(d, key, kl, hash);
        if (e && e->maxlen > q.limit) e = NULL;
      }
      if (!e) {
        if (len >= 0 && !(rm[i].msg_hdr.msg_flags & MSG_TRUNC)) to_js(d, p, len, &from[i]);
        continue;
      }
      unsigned t = atomic_fetch_add_explicit(&e->turn, 1, memory_order_relaxed) % e->n;
      memcpy(out[k], e->reply[t], e->len[t]);
      out[k][0] = p[0];
      out[k][1] = p[1];
      out[k][2] = (uint8_t)((out[k][2] & ~1u) | (p[2] & 1u)); /* RD as asked */
      siov[k] = (struct iovec){.iov_base = out[k], .iov_len = e->len[t]};
      sm[k].msg_hdr = (struct msghdr){.msg_name = &from[i], .msg_namelen = sizeof from[i], .msg_iov = &siov[k], .msg_iovlen = 1};
      count(d, C_HITS);
      if (e->nx) count(d, C_NXDOMAIN);
      k++;
    }
    pthread_rwlock_unlock(&d->lock);
    for (int sent = 0; sent < k;) {
      int r = sendmmsg(d->sock, sm + sent, (unsigned)(k - sent), 0);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        /* The one that failed is dropped (a full buffer, an unreachable client); the rest still go. */
        count(d, C_DROP_SEND);
        sent++;
        continue;
      }
      sent += r;
    }
  }
  free(in);
  free(out);
  return NULL;
}

/* ---- Node-API surface ------------------------------------------------------ */

static void call_js(napi_env env, napi_value fn, void *context, void *data) {
  miss_t *m = data;
  if (env != NULL && fn != NULL) {
    napi_value argv[3], undef;
    void *copy;
    char ip[INET_ADDRSTRLEN];
    struct in_addr a = {.s_addr = m->ip};
    inet_ntop(AF_INET, &a, ip, sizeof ip);
    if (napi_create_buffer_copy(env, m->len, m->data, &copy, &argv[0]) == napi_ok &&
        napi_create_string_utf8(env, ip, NAPI_AUTO_LENGTH, &argv[1]) == napi_ok &&
        napi_create_uint32(env, ntohs(m->port), &argv[2]) == napi_ok && napi_get_undefined(env, &undef) == napi_ok) {
      /* An exception thrown by the handler stays pending and surfaces as Node's uncaught exception: the handler must not throw. */
      napi_call_function(env, undef, fn, 3, argv, NULL);
    }
  }
  free(m);
}

static void fp_stop(dnsfp_t *d) {
  if (d->closed) return;
  d->closed = 1;
  uint64_t one = 1;
  if (d->started) {
    if (write(d->stopfd, &one, sizeof one) < 0) { /* eventfd writes of 1 cannot fail */
    }
    pthread_join(d->th, NULL);
  }
  close(d->sock);
  close(d->stopfd);
  if (d->tsfn) napi_release_threadsafe_function(d->tsfn, napi_tsfn_abort);
  d->tsfn = NULL;
}

static void fp_free(dnsfp_t *d) {
  table_clear(d);
  free(d->buckets);
  pthread_rwlock_destroy(&d->lock);
  free(d);
}

static void tsfn_finalized(napi_env env, void *data, void *hint) {
  dnsfp_t *d = data;
  d->tsfn_alive = 0;
  d->tsfn = NULL;
  if (d->wrapper_gone) fp_free(d);
}

static void fp_finalize(napi_env env, void *data, void *hint) {
  dnsfp_t *d = data;
  fp_stop(d);
  d->wrapper_gone = 1;
  if (!d->tsfn_alive) fp_free(d);
}

static dnsfp_t *fp_of(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  void *data;
  if (napi_get_cb_info(env, info, argc, argv, NULL, &data) != napi_ok) return NULL;
  dnsfp_t *d = data;
  if (d->closed) {
    napi_throw_error(env, "ERR_CLOSED", "DNS fast path is closed");
    return NULL;
  }
  return d;
}

static int buffer_arg(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  bool isbuf = false;
  if (napi_is_buffer(env, v, &isbuf) != napi_ok || !isbuf) return -1;
  return napi_get_buffer_info(env, v, (void **)data, len) == napi_ok ? 0 : -1;
}

static napi_value boolean(napi_env env, bool b) {
  napi_value v;
  return napi_get_boolean(env, b, &v) == napi_ok ? v : NULL;
}

/* setAllowed(nets: Buffer of (net u32 BE, mask u32 BE) pairs): clients served here; the rest go to JS. */
static napi_value js_set_allowed(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  dnsfp_t *d = fp_of(env, info, &argc, argv);
  uint8_t *b;
  size_t len;
  if (!d) return NULL;
  if (argc < 1 || buffer_arg(env, argv[0], &b, &len) || len % 8 || len / 8 > MAX_NETS) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "setAllowed(nets: Buffer of at most 32 (net, mask) u32 pairs)");
    return NULL;
  }
  pthread_rwlock_wrlock(&d->lock);
  d->nnets = (int)(len / 8);
  for (int i = 0; i < d->nnets; i++) {
    uint32_t net, mask;
    memcpy(&net, b + i * 8, 4);
    memcpy(&mask, b + i * 8 + 4, 4);
    d->nets[i].mask = ntohl(mask);
    d->nets[i].net = ntohl(net) & d->nets[i].mask;
  }
  pthread_rwlock_unlock(&d->lock);
  return NULL;
}

/* put(query, replies: Buffer[], nxdomain: boolean, turn: number): false when the query is not of the shape served here. */
static napi_value js_put(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  dnsfp_t *d = fp_of(env, info, &argc, argv);
  if (!d) return NULL;
  uint8_t *qb;
  size_t qlen;
  bool isarr = false, nx = false;
  uint32_t n = 0, turn = 0;
  if (argc < 4 || buffer_arg(env, argv[0], &qb, &qlen) || napi_is_array(env, argv[1], &isarr) != napi_ok || !isarr ||
      napi_get_array_length(env, argv[1], &n) != napi_ok || napi_get_value_bool(env, argv[2], &nx) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &turn) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "put(query: Buffer, replies: Buffer[], nxdomain: boolean, turn: number)");
    return NULL;
  }
  query_t q;
  if (n < 1 || n > MAX_CYCLE || qlen > MAX_DGRAM || parse_query(qb, (int)qlen, &q) != 0) return boolean(env, false);
  uint8_t *rb[MAX_CYCLE];
  size_t rl[MAX_CYCLE], total = 0, maxlen = 0;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok || buffer_arg(env, v, &rb[i], &rl[i])) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "put: replies must be Buffers");
      return NULL;
    }
    if (rl[i] < 12 || rl[i] > MAX_REPLY) return boolean(env, false);
    total += rl[i];
    if (rl[i] > maxlen) maxlen = rl[i];
  }
  entry_t *e = malloc(sizeof *e + total);
  if (!e) return boolean(env, false);
  e->keylen = (uint16_t)make_key(qb, &q, e->key, &e->hash);
  e->n = (uint16_t)n;
  e->maxlen = (uint16_t)maxlen;
  e->nx = nx;
  atomic_init(&e->turn, turn);
  uint8_t *at = (uint8_t *)(e + 1);
  for (uint32_t i = 0; i < n; i++) {
    memcpy(at, rb[i], rl[i]);
    e->reply[i] = at;
    e->len[i] = (uint16_t)rl[i];
    at += rl[i];
  }
  pthread_rwlock_wrlock(&d->lock);
  if (d->entries >= MAX_ENTRIES || d->bytes + total > MAX_BYTES) table_clear(d);
  entry_t **slot = &d->buckets[e->hash % BUCKETS];
  for (entry_t **pp = slot; *pp; pp = &(*pp)->next) {
    if ((*pp)->hash == e->hash && (*pp)->keylen == e->keylen && memcmp((*pp)->key, e->key, e->keylen) == 0) {
      entry_t *old = *pp;
      *pp = old->next;
      d->entries--;
      for (int i = 0; i < old->n; i++) d->bytes -= old->len[i];
      free(old);
      break;
    }
  }
  e->next = *slot;
  *slot = e;
  d->entries++;
  d->bytes += total;
  pthread_rwlock_unlock(&d->lock);
  return boolean(env, true);
}

static napi_value js_clear(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  dnsfp_t *d = fp_of(env, info, &argc, NULL);
  if (!d) return NULL;
  pthread_rwlock_wrlock(&d->lock);
  table_clear(d);
  pthread_rwlock_unlock(&d->lock);
  return NULL;
}

/* send(bytes, ip, port): a reply JS decided, from the same socket (source LISTEN:53). Errors are dropped, as dgram's are. */
static napi_value js_send(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  dnsfp_t *d = fp_of(env, info, &argc, argv);
  if (!d) return NULL;
  uint8_t *b;
  size_t len;
  char ip[INET_ADDRSTRLEN + 1];
  size_t iplen = 0;
  uint32_t port = 0;
  struct sockaddr_in sa = {.sin_family = AF_INET};
  if (argc < 3 || buffer_arg(env, argv[0], &b, &len) || napi_get_value_string_utf8(env, argv[1], ip, sizeof ip, &iplen) != napi_ok ||
      napi_get_value_uint32(env, argv[2], &port) != napi_ok || port > 65535 || inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "send(bytes: Buffer, ip: IPv4 string, port: number)");
    return NULL;
  }
  sa.sin_port = htons((uint16_t)port);
  if (sendto(d->sock, b, len, MSG_DONTWAIT, (struct sockaddr *)&sa, sizeof sa) < 0) count(d, C_DROP_SEND);
  return NULL;
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  void *data;
  if (napi_get_cb_info(env, info, &argc, NULL, NULL, &data) != napi_ok) return NULL;
  dnsfp_t *d = data;
  napi_value out, v;
  if (napi_create_object(env, &out) != napi_ok) return NULL;
  for (int i = 0; i < C_COUNT; i++)
    if (napi_create_double(env, (double)atomic_load(&d->c[i]), &v) != napi_ok || napi_set_named_property(env, out, counter_names[i], v) != napi_ok)
      return NULL;
  pthread_rwlock_rdlock(&d->lock);
  double entries = (double)d->entries;
  pthread_rwlock_unlock(&d->lock);
  if (napi_create_double(env, entries, &v) != napi_ok || napi_set_named_property(env, out, "entries", v) != napi_ok) return NULL;
  return out;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  void *data;
  if (napi_get_cb_info(env, info, &argc, NULL, NULL, &data) != napi_ok) return NULL;
  dnsfp_t *d = data;
  fp_stop(d);
  pthread_rwlock_wrlock(&d->lock);
  table_clear(d);
  pthread_rwlock_unlock(&d->lock);
  return NULL;
}

/* dnsFastpathOpen({ bindIp: u32, port: 0..65535, onMiss(query, ip, port) }) -> { port, setAllowed, put, clear, send, stats, close } */
napi_value dns_fastpath_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], vip, vport, onmiss, out, fn, name;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int64_t ip = -1, port = -1;
  napi_valuetype t = napi_undefined;
  if (argc < 1 || napi_get_named_property(env, argv[0], "bindIp", &vip) != napi_ok || napi_get_value_int64(env, vip, &ip) != napi_ok ||
      napi_get_named_property(env, argv[0], "port", &vport) != napi_ok || napi_get_value_int64(env, vport, &port) != napi_ok ||
      napi_get_named_property(env, argv[0], "onMiss", &onmiss) != napi_ok || napi_typeof(env, onmiss, &t) != napi_ok || t != napi_function ||
      ip < 0 || ip > 0xffffffffLL || port < 0 || port > 65535) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "dnsFastpathOpen({ bindIp: u32, port: 0..65535, onMiss: function })");
    return NULL;
  }
  dnsfp_t *d = calloc(1, sizeof *d);
  if (!d) return weft_throw_errno(env, ENOMEM, "calloc", "DNS fast path");
  d->buckets = calloc(BUCKETS, sizeof *d->buckets);
  d->stopfd = eventfd(0, EFD_CLOEXEC);
  d->sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl((uint32_t)ip)};
  socklen_t salen = sizeof sa;
  const char *failed = !d->buckets ? "calloc" : d->stopfd < 0 || d->sock < 0 ? "socket" : NULL;
  int err = failed ? (d->buckets ? errno : ENOMEM) : 0;
  if (!failed) {
    int buf = 4 << 20;
    if (setsockopt(d->sock, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof buf) < 0) setsockopt(d->sock, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    if (bind(d->sock, (struct sockaddr *)&sa, sizeof sa) < 0 || getsockname(d->sock, (struct sockaddr *)&sa, &salen) < 0) {
      err = errno;
      failed = "bind";
    }
  }
  if (!failed && (napi_create_string_utf8(env, "weft-dns-miss", NAPI_AUTO_LENGTH, &name) != napi_ok ||
                  napi_create_threadsafe_function(env, onmiss, NULL, name, MISS_QUEUE, 1, d, tsfn_finalized, d, call_js, &d->tsfn) != napi_ok)) {
    err = EINVAL;
    failed = "napi_create_threadsafe_function";
  }
  d->tsfn_alive = d->tsfn != NULL;
  pthread_rwlock_init(&d->lock, NULL);
  for (int i = 0; i < C_COUNT; i++) atomic_init(&d->c[i], 0);
  if (!failed && (err = pthread_create(&d->th, NULL, worker, d)) != 0) failed = "pthread_create";
  if (failed) {
    if (d->sock >= 0) close(d->sock);
    if (d->stopfd >= 0) close(d->stopfd);
    d->closed = 1;
    d->wrapper_gone = 1;
    if (d->tsfn) napi_release_threadsafe_function(d->tsfn, napi_tsfn_abort); /* its finalizer frees d */
    else fp_free(d);
    return weft_throw_errno(env, err, failed, "DNS fast path");
  }
  d->started = 1;
  if (napi_create_object(env, &out) != napi_ok || napi_wrap(env, out, d, fp_finalize, NULL, NULL) != napi_ok) {
    fp_stop(d);
    d->wrapper_gone = 1; /* the threadsafe function's finalizer frees d */
    return NULL;
  }
  const struct {
    const char *name;
    napi_callback cb;
  } methods[] = {{"setAllowed", js_set_allowed}, {"put", js_put}, {"clear", js_clear}, {"send", js_send}, {"stats", js_stats}, {"close", js_close}};
  for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
    if (napi_create_function(env, methods[i].name, NAPI_AUTO_LENGTH, methods[i].cb, d, &fn) != napi_ok ||
        napi_set_named_property(env, out, methods[i].name, fn) != napi_ok)
      return NULL;
  }
  if (napi_create_uint32(env, ntohs(sa.sin_port), &vport) != napi_ok || napi_set_named_property(env, out, "port", vport) != napi_ok) return NULL;
  return out;
}
