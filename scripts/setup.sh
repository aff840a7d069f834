#!/usr/bin/env bash
# Installs whatever weft's demo and tests need and is missing, then builds.
# Safe to run again: each step checks first. Debian 12, as root.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[setup] %s\n' "$*" >&2; }

# command-or-file  debian-package
need=(
  "etcd etcd-server"
  "etcdctl etcd-client"
  "ip iproute2"
  "bridge iproute2"
  "iperf3 iperf3"
  "openssl openssl"
  "nft nftables"
  "ping iputils-ping"
  "dig dnsutils"
  "dnsmasq dnsmasq-base"
  "dnsperf dnsperf"
  "tcpdump tcpdump"
  "socat socat"
  "curl curl"
  "nsenter util-linux"
  "pgrep procps"
  "/usr/lib/cni/bridge containernetworking-plugins"
  "podman podman"
  "/usr/sbin/runc runc"
  "/usr/sbin/dockerd docker.io"
  "containerd containerd"
  "iptables iptables"
  "/var/lib/dpkg/info/busybox-static.list busybox-static"
  "python3 python3"
  "make make"
  "g++ g++"
  # the udp backend's sealing (native/src/udp_forwarder.c) calls the libcrypto Node
  # exports; Node's own headers carry OpenSSL's, this covers a Node built without them
  "/usr/include/openssl/evp.h libssl-dev"
)
missing=()
for pair in "${need[@]}"; do
  what=${pair% *}; pkg=${pair#* }
  if [[ $what == /* ]]; then [[ -e $what ]] && continue; else command -v "$what" >/dev/null 2>&1 && continue; fi
  [[ " ${missing[*]-} " == *" $pkg "* ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    log "missing Debian packages: ${missing[*]}; run this as root (it uses apt-get)"; exit 1
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci when node_modules is missing or older than the lock file.
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

log "building"
npm run --silent build
