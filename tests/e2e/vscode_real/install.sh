#!/usr/bin/env bash
# Install what the real-VS-Code suite needs, from package registries only, into a cache
# outside the clone so the second run (and every CI run on the same machine) takes seconds:
#   - code-server (VS Code in a browser) from npm, native modules built against Debian's node;
#   - Debian's headless chromium and ripgrep (apt), plus the headers the native modules need;
#   - puppeteer-core (npm) for the driver, from tests/e2e/vscode_real/package-lock.json.
# Nothing here may download a browser or a prebuilt binary from anywhere but a registry:
# every install runs with --ignore-scripts and the native modules are built with node-gyp.
#
# Usage: tests/e2e/vscode_real/install.sh        (prints the code-server directory last)
# Env:   AETHEL_CODE_SERVER_CACHE  cache root (default ~/.cache/aethel-lsp-ci/code-server)
#        AETHEL_CODE_SERVER_VERSION (default 4.100.3 = VS Code 1.100.3, the newest on Node 20)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
VERSION="${AETHEL_CODE_SERVER_VERSION:-4.100.3}"
CACHE="${AETHEL_CODE_SERVER_CACHE:-$HOME/.cache/aethel-lsp-ci/code-server}"
TARGET="$CACHE/$VERSION"

export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
export npm_config_yes=true npm_config_nodedir=/usr npm_config_loglevel=error

say() { echo "[vscode-real install] $*" >&2; }

apt_packages() {
  local wanted=(chromium ripgrep libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev pkg-config
    g++ make python3)
  local missing=()
  for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    say "apt-get install ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then
      say "not root: install these Debian packages first: ${missing[*]}"
      exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

node_gyp() {
  # npm's own bundled node-gyp, against Debian's node headers: never fetches headers.
  node "$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js" "$@"
}

build_native() {
  local dir="$1"
  say "node-gyp rebuild ${dir#"$STAGE"/}"
  (cd "$dir" && node_gyp rebuild --nodedir=/usr >/dev/null 2>"$dir/.gyp-build.log") \
    || { cat "$dir/.gyp-build.log" >&2; exit 1; }
}

install_code_server() {
  STAGE="$CACHE/.stage-$VERSION-$$"
  rm -rf "$STAGE"
  mkdir -p "$STAGE"
  trap 'rm -rf "$STAGE"' EXIT
  (cd "$STAGE" && npm pack --silent "code-server@$VERSION" >/dev/null)
  tar xzf "$STAGE/code-server-$VERSION.tgz" -C "$STAGE"
  local pkg="$STAGE/package" vsc="$STAGE/package/lib/vscode"

  # The package's postinstall runs a nested `npm install` that npm 11 breaks; do each folder.
  say "npm install code-server $VERSION (3 folders)"
  (cd "$pkg" && npm install --omit=dev --ignore-scripts >/dev/null)
  (cd "$vsc" && npm install --omit=dev --ignore-scripts >/dev/null)
  (cd "$vsc/extensions" && npm install --omit=dev --ignore-scripts >/dev/null \
    && node postinstall.mjs >/dev/null)

  # argon2 (password auth, loaded at start) builds through node-pre-gyp; never its download.
  say "node-pre-gyp rebuild argon2"
  (cd "$pkg/node_modules/argon2" \
    && npm_config_node_gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js" \
      ../.bin/node-pre-gyp rebuild --build-from-source --nodedir=/usr >/dev/null 2>.gyp-build.log) \
    || { cat "$pkg/node_modules/argon2/.gyp-build.log" >&2; exit 1; }
  for mod in kerberos node-pty @vscode/spdlog @vscode/deviceid native-watchdog; do
    build_native "$vsc/node_modules/$mod"
  done
  # @vscode/ripgrep's postinstall downloads rg from the internet: use Debian's.
  mkdir -p "$vsc/node_modules/@vscode/ripgrep/bin"
  cp "$(command -v rg)" "$vsc/node_modules/@vscode/ripgrep/bin/rg"

  # What postinstall.sh does after its installs.
  ln -sfn node_modules "$vsc/node_modules.asar"
  ln -sfn code-linux.sh "$vsc/bin/remote-cli/code-server"
  ln -sfn browser-linux.sh "$vsc/bin/helpers/browser.sh"

  rm -rf "$TARGET"
  mv "$pkg" "$TARGET"
  touch "$TARGET/.aethel-complete"
  rm -rf "$STAGE"
  trap - EXIT
}

install_driver() {
  # puppeteer-core only: never a browser download (it has no install script anyway).
  if [ ! -f "$HERE/node_modules/.package-lock.json" ] \
    || [ "$HERE/package-lock.json" -nt "$HERE/node_modules/.package-lock.json" ]; then
    say "npm ci (puppeteer-core)"
    (cd "$HERE" && npm ci --ignore-scripts >/dev/null)
  fi
}

main() {
  apt_packages
  mkdir -p "$CACHE"
  if [ -f "$TARGET/.aethel-complete" ]; then
    say "code-server $VERSION cached in $TARGET"
  else
    local start=$SECONDS
    install_code_server
    say "code-server $VERSION installed in $((SECONDS - start)) s"
  fi
  install_driver
  echo "$TARGET"
}

main "$@"
