/*
 * weft-cni: the CNI plugin executable, a relay. A runtime starts it once per
 * container operation and waits for it, so it must start in milliseconds;
 * Node alone needs ~100 ms. All protocol logic (parsing, validation, result
 * shapes, CNI errors) lives in the agent, in TypeScript (the .ts files of cni-plugin/).
 * This program only:
 *   1. reads the network config from stdin and the CNI_* environment,
 *   2. finds the agent's socket from the config's top-level "runDir"
 *      (default /run/weft) and its deadline from "timeoutSeconds" (default 5),
 *   3. POSTs {"env":{...},"stdin":"..."} to /v1/cni over <runDir>/weft.sock,
 *   4. prints the reply body on stdout and exits with the code in the
 *      X-Weft-Exit-Code header.
 * It answers VERSION and a stdin that is not a JSON object (code 6) itself:
 * neither carries a runDir to find the agent by.
 * When the agent cannot be reached or does not answer in time it prints CNI
 * error 11 ("try again later") itself, so a hung agent never hangs kubelet;
 * for STATUS it prints 50 ("not available"), which is that command's answer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* The agent's request body limit (MAX_BODY in agent/api/server.ts; a test checks they are equal). */
#define MAX_BODY (4 << 20)
#define MAX_REPLY (4 << 20)

struct buf { char *p; size_t len, cap; };

static void put(struct buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    b->cap = (b->len + n + 1) * 2;
    b->p = realloc(b->p, b->cap);
    if (!b->p) abort();
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = 0;
}
static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

static void put_json_string(struct buf *b, const char *s, size_t n) {
  puts_(b, "\"");
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[8];
    if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; put(b, esc, 2); }
    else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); puts_(b, esc); }
    else put(b, (const char *)&c, 1);
  }
  puts_(b, "\"");
}

/* --- a minimal scanner for two top-level keys of the config ------------- */

static const char *ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}
/* Skips a JSON string starting at '"'; returns the position after it, or NULL. */
static const char *skip_string(const char *p, const char *e) {
  for (p++; p < e; p++) {
    if (*p == '\\') p++;
    else if (*p == '"') return p + 1;
  }
  return NULL;
}
/* Skips any JSON value; nested containers are tracked by depth, strings honoured. */
static const char *skip_value(const char *p, const char *e) {
  p = ws(p, e);
  if (p >= e) return NULL;
  if (*p == '"') return skip_string(p, e);
  if (*p == '{' || *p == '[') {
    int depth = 0;
    for (; p < e; p++) {
      if (*p == '"') { p = skip_string(p, e); if (!p) return NULL; p--; }
      else if (*p == '{' || *p == '[') depth++;
      else if (*p == '}' || *p == ']') { if (--depth == 0) return p + 1; }
    }
    return NULL;
  }
  while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') p++;
  return p;
}
/* Finds top-level key `key` and points val, vlen at its raw value text. Returns 1 if found. */
static int find_key(const char *s, size_t n, const char *key, const char **val, size_t *vlen) {
  const char *p = ws(s, s + n), *e = s + n;
  if (p >= e || *p != '{') return 0;
  p++;
  for (;;) {
    p = ws(p, e);
    if (p >= e || *p != '"') return 0;
    const char *k = p + 1, *ke = skip_string(p, e);
    if (!ke) return 0;
    p = ws(ke, e);
    if (p >= e || *p != ':') return 0;
    p = ws(p + 1, e);
    const char *ve = skip_value(p, e);
    if (!ve) return 0;
    if ((size_t)(ke - 1 - k) == strlen(key) && memcmp(k, key, strlen(key)) == 0) {
      *val = p; *vlen = (size_t)(ve - p);
      return 1;
    }
    p = ws(ve, e);
    if (p < e && *p == ',') { p++; continue; }
    return 0;
  }
}
/* True when s is one JSON object with nothing after it. Values are skipped, not validated: the agent does that. */
static int is_json_object(const char *s, size_t n) {
  const char *p = ws(s, s + n), *e = s + n;
  if (p >= e || *p != '{') return 0;
  const char *end = skip_value(p, e);
  return end != NULL && ws(end, e) == e;
}
/* A plain string value (no escapes needed for paths and versions) into out. */
static int string_value(const char *v, size_t n, char *out, size_t cap) {
  if (n < 2 || v[0] != '"' || v[n - 1] != '"' || n - 2 >= cap || memchr(v + 1, '\\', n - 2)) return 0;
  memcpy(out, v + 1, n - 2);
  out[n - 2] = 0;
  return 1;
}

/* --- errors ------------------------------------------------------------- */

static char cni_version[32] = "1.1.0";

static void fail(int code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  struct buf b = {0};
  puts_(&b, "{\"cniVersion\":");
  put_json_string(&b, cni_version, strlen(cni_version));
  char num[32];
  snprintf(num, sizeof num, ",\"code\":%d,\"msg\":", code);
  puts_(&b, num);
  put_json_string(&b, msg, strlen(msg));
  puts_(&b, ",\"details\":\"\"}\n");
  fwrite(b.p, 1, b.len, stdout);
  exit(1);
}

/*
 * The agent could not be reached or did not answer. For STATUS that is the
 * answer itself, "not available" (50); for every other command the runtime
 * should retry (11). The agent's own protocol code maps the same way.
 */
static int status_call;

static void unreachable(const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (status_call) fail(50, "weft is not available: %s", msg);
  fail(11, "try again later: %s", msg);
}

static long ms_left(const struct timespec *deadline) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Waits for fd to be ready for `events` before the deadline; 0 on time-out. */
static int wait_fd(int fd, short events, const struct timespec *deadline) {
  for (;;) {
    long left = ms_left(deadline);
    if (left <= 0) return 0;
    struct pollfd pfd = {.fd = fd, .events = events};
    int r = poll(&pfd, 1, (int)left);
    if (r > 0) return 1;
    if (r == 0) return 0;
    if (errno != EINTR) return 0;
  }
}

int main(void) {
  struct buf in = {0};
  char chunk[65536];
  ssize_t r;
  while ((r = read(0, chunk, sizeof chunk)) > 0) {
    if (in.len + (size_t)r > MAX_BODY) fail(6, "failed to decode network config: stdin is larger than %d bytes, the weft agent's limit", MAX_BODY);
    put(&in, chunk, (size_t)r);
  }
  if (!in.p) puts_(&in, "");

  const char *v;
  size_t vn;
  /* Errors echo the caller's version when it can be read, even from a broken config. */
  if (find_key(in.p, in.len, "cniVersion", &v, &vn)) string_value(v, vn, cni_version, sizeof cni_version);

  /*
   * Two answers need no agent, and cannot get one: VERSION (libcni sends it
   * with only {"cniVersion": ...} on stdin, so there is no runDir to find the
   * agent by) and stdin that is not a JSON object (no runDir either; retrying
   * would never help, so 11 would be wrong). The list must equal
   * SUPPORTED_VERSIONS in cni-plugin/version.ts; the conformance test checks.
   */
  const char *command = getenv("CNI_COMMAND");
  status_call = command != NULL && strcmp(command, "STATUS") == 0;
  if (command != NULL && strcmp(command, "VERSION") == 0) {
    fputs("{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}", stdout);
    return 0;
  }
  if (!is_json_object(in.p, in.len)) fail(6, "failed to decode network config: stdin is not a JSON object");

  char run_dir[200] = "/run/weft";
  long timeout_s = 5;
  if (find_key(in.p, in.len, "runDir", &v, &vn) && !string_value(v, vn, run_dir, sizeof run_dir))
    fail(7, "runDir must be a plain string path shorter than %zu bytes", sizeof run_dir);
  if (find_key(in.p, in.len, "timeoutSeconds", &v, &vn)) {
    char num[16] = {0};
    memcpy(num, v, vn < 15 ? vn : 15);
    timeout_s = strtol(num, NULL, 10);
    if (timeout_s < 1 || timeout_s > 300) fail(7, "timeoutSeconds must be a whole number from 1 to 300");
  }

  struct buf body = {0};
  puts_(&body, "{\"env\":{");
  int first = 1;
  for (char **e = environ; *e; e++) {
    if (strncmp(*e, "CNI_", 4) != 0) continue;
    const char *eq = strchr(*e, '=');
    if (!eq) continue;
    if (!first) puts_(&body, ",");
    first = 0;
    put_json_string(&body, *e, (size_t)(eq - *e));
    puts_(&body, ":");
    put_json_string(&body, eq + 1, strlen(eq + 1));
  }
  puts_(&body, "},\"stdin\":");
  put_json_string(&body, in.p, in.len);
  puts_(&body, "}");
  /* Escaping can grow the config; the agent would refuse a body over its limit, so say it here, as a config error. */
  if (body.len > MAX_BODY)
    fail(6, "failed to decode network config: with the CNI_* environment it makes a %zu-byte request, over the weft agent's limit of %d bytes", body.len, MAX_BODY);

  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += timeout_s;

  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if ((size_t)snprintf(addr.sun_path, sizeof addr.sun_path, "%s/weft.sock", run_dir) >= sizeof addr.sun_path)
    fail(7, "runDir %s is too long for a unix socket path", run_dir);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) unreachable("cannot create a socket: %s", strerror(errno));
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS && errno != EAGAIN)
    unreachable("the weft agent is not reachable at %s (%s); is `weft agent --run-dir %s` running? check `weft status --run-dir %s`",
         addr.sun_path, strerror(errno), run_dir, run_dir);

  struct buf req = {0};
  char head[256];
  snprintf(head, sizeof head, "POST /v1/cni HTTP/1.0\r\nHost: weft\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n", body.len);
  puts_(&req, head);
  put(&req, body.p, body.len);
  for (size_t off = 0; off < req.len;) {
    if (!wait_fd(fd, POLLOUT, &deadline)) unreachable("the weft agent at %s did not accept the request within %ld s", addr.sun_path, timeout_s);
    ssize_t w = send(fd, req.p + off, req.len - off, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EINTR) unreachable("sending to the weft agent failed: %s", strerror(errno));
    if (w > 0) off += (size_t)w;
  }

  struct buf resp = {0};
  for (;;) {
    if (!wait_fd(fd, POLLIN, &deadline)) unreachable("the weft agent at %s did not answer within %ld s", addr.sun_path, timeout_s);
    r = recv(fd, chunk, sizeof chunk, 0);
    if (r == 0) break;
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      unreachable("reading the weft agent's answer failed: %s", strerror(errno));
    }
    if (resp.len + (size_t)r > MAX_REPLY) fail(999, "the weft agent's answer is larger than %d bytes", MAX_REPLY);
    put(&resp, chunk, (size_t)r);
  }
  close(fd);

  /*
   * An answer cut off before its end means the agent went away mid-request
   * (killed, restarted): the runtime's retry will reach the new one, so 11.
   */
  char *end = resp.p ? strstr(resp.p, "\r\n\r\n") : NULL;
  if (!end) unreachable("the weft agent at %s closed the connection before answering (did it restart?)", addr.sun_path);
  *end = 0;
  const char *payload = end + 4;
  size_t got = resp.len - (size_t)(payload - resp.p);
  const char *cl = strcasestr(resp.p, "\r\nContent-Length:");
  if (cl && (size_t)strtoull(cl + strlen("\r\nContent-Length:"), NULL, 10) > got)
    unreachable("the weft agent at %s closed the connection in the middle of its answer (did it restart?)", addr.sun_path);
  const char *hdr = strcasestr(resp.p, "\r\nX-Weft-Exit-Code:");
  if (!hdr && strncmp(resp.p, "HTTP/1.1 413", 12) == 0)
    fail(6, "failed to decode network config: the weft agent refused the request as too large");
  if (!hdr) fail(999, "the weft agent's answer lacks X-Weft-Exit-Code (is the agent a different version?)");
  int code = atoi(hdr + strlen("\r\nX-Weft-Exit-Code:"));
  fwrite(payload, 1, got, stdout);
  fflush(stdout);
  return code;
}
