# Shared by scripts/demo and scripts/test: install what mailgate needs on
# Debian/Ubuntu and point cargo at a persistent target directory outside the
# clone (RocksDB's C++ takes 12-25 minutes to build; it is built once).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/mailgate-target}"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_system_packages() {
  local need=()
  command -v make >/dev/null 2>&1 || need+=(make) # jemalloc's build
  command -v clang >/dev/null 2>&1 || need+=(clang)
  dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
  [ -x /usr/sbin/dovecot ] || need+=(dovecot-imapd)
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
  command -v curl >/dev/null 2>&1 || need+=(curl)
  if [ "${#need[@]}" -gt 0 ]; then
    echo "==> installing ${need[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  # Debian starts a system Dovecot on install; mailgate's tests and demo run
  # their own on free loopback ports, so the system one is left alone.
}

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
      export PATH="$HOME/.cargo/bin:$PATH"
    else
      echo "==> installing Rust (rustup)"
      curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c clippy -c rustfmt
      export PATH="$HOME/.cargo/bin:$PATH"
    fi
  fi
  if command -v rustup >/dev/null 2>&1; then
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
  fi
}

# Cargo records a workspace crate's sources relative to its package, and
# judges them by mtime: after a build from another clone sharing this target
# directory, sources older than that build count as fresh, and binaries that
# name the other clone's paths (env!("CARGO_MANIFEST_DIR")) are reused. When
# the clone changes, its sources are touched so that its crates (only those;
# RocksDB stays built) are rebuilt.
own_target_dir() {
  local stamp="$CARGO_TARGET_DIR/.built-from"
  mkdir -p "$CARGO_TARGET_DIR"
  if [ "$(cat "$stamp" 2>/dev/null)" != "$ROOT" ]; then
    git -C "$ROOT" ls-files -z '*.rs' | (cd "$ROOT" && xargs -0 -r touch)
    printf '%s\n' "$ROOT" > "$stamp"
  fi
}

ensure_all() {
  ensure_system_packages
  ensure_rust
  own_target_dir
  cd "$ROOT"
}
