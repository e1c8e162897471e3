#!/usr/bin/env bash
# Install the Claude Code CLI, pinned to the versions our fixtures and e2e tests were made with,
# each into its own private prefix. Idempotent.
#
#   scripts/install-claude.sh                    # every version in claude-versions.txt,
#                                                # each into <repo>/.deps/claude-<version>
#   scripts/install-claude.sh VERSION [PREFIX]   # one version (default prefix as above)
#
# Afterwards the runnable CLI is PREFIX/node_modules/.bin/claude, a symlink to
# PREFIX/node_modules/@anthropic-ai/claude-code/bin/claude.exe, which is (after the package's
# postinstall) a hard link to / copy of the native ELF binary shipped in the platform package
# @anthropic-ai/claude-code-<os>-<arch>[-musl] (an optionalDependency). Without that postinstall,
# bin/claude.exe is a 500-byte shell stub that prints an error and exits 1; this script detects
# that case and places the native binary itself.
#
# Environment: NPM (default npm).
set -euo pipefail

PKG="@anthropic-ai/claude-code"
NPM="${NPM:-npm}"

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$script_dir/.." && pwd)"
PINS="$repo_dir/claude-versions.txt"

log() { printf 'install-claude: %s\n' "$*" >&2; }
die() { printf 'install-claude: error: %s\n' "$*" >&2; exit 1; }

# The pinned versions: the lines of claude-versions.txt that are not blank or comments.
pinned_versions() {
  [[ -r "$PINS" ]] || die "$PINS not found"
  grep -Ev '^[[:space:]]*(#|$)' "$PINS" | sed -E 's/[[:space:]]//g'
}

if [[ $# -eq 0 ]]; then
  versions="$(pinned_versions)" || die "no versions in $PINS"
  for v in $versions; do
    "${BASH_SOURCE[0]}" "$v"
  done
  exit 0
fi

VERSION="$1"
# An explicit version only: a tag such as "latest" would make the test run depend on the day.
[[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
  die "'$VERSION' is not an explicit version (x.y.z); the tested ones are in $PINS"
PREFIX="${2:-$repo_dir/.deps/claude-$VERSION}"

bin_link="$PREFIX/node_modules/.bin/claude"
pkg_dir="$PREFIX/node_modules/$PKG"
bin_file="$pkg_dir/bin/claude.exe"

# Run `claude --version` in a throwaway HOME (it must not touch the user's ~/.claude) and with
# no network-related side effects. Prints the version line; returns non-zero if it fails.
claude_version() {
  local tmp_home out rc
  tmp_home="$(mktemp -d)"
  rc=0
  out="$(cd "$tmp_home" && env HOME="$tmp_home" DISABLE_AUTOUPDATER=1 \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 "$bin_link" --version </dev/null 2>&1)" || rc=$?
  rm -rf "$tmp_home"
  printf '%s\n' "$out"
  return "$rc"
}

is_installed() {
  [[ -x "$bin_link" ]] || return 1
  local v
  v="$(claude_version 2>/dev/null)" || return 1
  [[ "$v" == "$VERSION "* || "$v" == "$VERSION" ]]
}

if is_installed; then
  log "claude $VERSION already installed at $bin_link"
  exit 0
fi

command -v "$NPM" >/dev/null 2>&1 || die "'$NPM' not found; install Node.js >= 18 with npm"
command -v node >/dev/null 2>&1 || die "'node' not found; install Node.js >= 18"

mkdir -p "$PREFIX"
log "installing $PKG@$VERSION into $PREFIX"
# --include=optional: the native binary lives in a platform-specific optionalDependency; a user
# config with omit=optional would otherwise leave only the stub.
"$NPM" install --prefix "$PREFIX" --no-audit --no-fund --save-exact --include=optional \
  "$PKG@$VERSION" >&2 || die "npm install $PKG@$VERSION failed (is the npm registry reachable?)"

[[ -f "$pkg_dir/package.json" ]] || die "npm did not install $PKG into $pkg_dir"
installed_version="$(node -p "require(process.argv[1]).version" "$pkg_dir/package.json")"
[[ "$installed_version" == "$VERSION" ]] ||
  die "npm installed $PKG@$installed_version, expected $VERSION"

# Platform package name, as install.cjs computes it.
platform_key="$(node -e '
  const os = require("os");
  let p = process.platform, cpu = os.arch();
  if (p === "linux") {
    const r = process.report && process.report.getReport ? process.report.getReport() : null;
    const musl = r != null && r.header && r.header.glibcVersionRuntime === undefined;
    console.log("linux-" + cpu + (musl ? "-musl" : ""));
  } else console.log(p + "-" + cpu);
')"
native_pkg="$PKG-$platform_key"
native_bin="$PREFIX/node_modules/$native_pkg/claude"

is_stub() { [[ ! -f "$bin_file" ]] || (( $(stat -c %s "$bin_file") < 4096 )); }

if is_stub; then
  # The postinstall (node install.cjs) did not run (ignore-scripts, an allowScripts policy...).
  log "bin/claude.exe is still the placeholder stub; placing the native binary ($native_pkg)"
  if [[ ! -x "$native_bin" ]]; then
    log "native package $native_pkg missing; installing it explicitly"
    "$NPM" install --prefix "$PREFIX" --no-audit --no-fund --save-exact --include=optional \
      --force "$native_pkg@$VERSION" >&2 ||
      die "npm install $native_pkg@$VERSION failed: no native Claude Code binary for $platform_key"
  fi
  [[ -x "$native_bin" ]] || die "native binary not found at $native_bin"
  (cd "$pkg_dir" && node install.cjs) >&2 || true
  if is_stub; then
    rm -f "$bin_file"
    ln "$native_bin" "$bin_file" 2>/dev/null || cp "$native_bin" "$bin_file"
    chmod 0755 "$bin_file"
  fi
fi

[[ -e "$bin_link" ]] || {
  mkdir -p "$(dirname "$bin_link")"
  ln -sf "../$PKG/bin/claude.exe" "$bin_link"
}

if ! version_out="$(claude_version)"; then
  die "$bin_link --version failed:
$version_out"
fi
[[ "$version_out" == "$VERSION "* || "$version_out" == "$VERSION" ]] ||
  die "$bin_link --version printed '$version_out', expected $VERSION"

log "installed: $bin_link -> $(readlink -f "$bin_link") ($version_out)"
