#!/bin/sh
# Builds weft's native addon (native/build/Release/weft_native.node) and the
# CNI relay executable (native/build/weft-cni) from
# source, offline. node-gyp would otherwise try to download Node's headers;
# we point it at the headers of the node that runs us (Debian's nodejs ships
# them in <prefix>/include/node), and use npm's own bundled node-gyp so the
# build needs no extra npm package. Usage: sh native/build.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix=$(node -p 'require("path").resolve(process.execPath, "../..")')
if [ ! -f "$prefix/include/node/node_api.h" ]; then
  echo "weft: Node headers not found in $prefix/include/node (install the nodejs dev headers)" >&2
  exit 1
fi
gyp="$here/../node_modules/.bin/node-gyp"
if [ ! -x "$gyp" ]; then
  gyp="$(npm root -g 2>/dev/null)/npm/node_modules/node-gyp/bin/node-gyp.js"
fi
if [ ! -f "$gyp" ]; then
  echo "weft: node-gyp not found (neither in node_modules nor bundled with npm)" >&2
  exit 1
fi
node "$gyp" rebuild --directory "$here" --nodedir="$prefix" --loglevel=warn
# The CNI plugin executable: a small C relay to the agent (see its header).
cc -O2 -Wall -Wextra -Werror -o "$here/build/weft-cni" "$here/../cni-plugin/relay/weft-cni.c"
