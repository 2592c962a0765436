#!/usr/bin/env bash
# Build the reconcile OCI image from the release binary and smoke-test it.
#
#   bash packaging/container/build.sh
#
# The image is `scratch` plus the glibc release binary (the one the .deb
# ships, so CI builds it once) and exactly the shared libraries `ldd` lists
# for it: no registry is needed. It is tagged reconcile:<version> (podman
# names it localhost/reconcile:<version>).
#
# Settings (environment; empty means the engine's own default):
#   CONTAINER_ENGINE    podman or docker; default: podman if installed, else
#                       docker if its daemon answers, else podman installed
#                       from Debian's packages (root and apt-get needed)
#   CONTAINER_RUNTIME   OCI runtime, default runc (crun is refused on some
#                       sandboxed hosts)
#   CONTAINER_ULIMITS   default "--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"
#                       (some hosts refuse the engine's default ulimits)
#   CONTAINER_NETWORK   network of the smoke runs, default none (the demo
#                       needs only loopback; nothing else is contacted)
#   IMAGE               default reconcile:<version of the binary>
#   RECONCILE_BIN       default target/release/reconcile (built when absent)
#   SMOKE               1 (default) runs the smoke test, 0 only builds
#   CONTAINER_SKIP_OK   1: no usable engine is a skip (exit 0), not a failure
set -euo pipefail
cd "$(dirname "$0")/../.."

say() { printf '%s\n' "$*" >&2; }
skip_or_fail() {
    if [ "${CONTAINER_SKIP_OK:-0}" = 1 ]; then
        say "container: SKIPPED: $*"
        exit 0
    fi
    say "container: $*"
    exit 1
}

# --- the engine -------------------------------------------------------------
engine="${CONTAINER_ENGINE:-}"
if [ -z "$engine" ]; then
    if command -v podman >/dev/null; then
        engine=podman
    elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        engine=docker
    elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "container: no podman, no docker daemon: installing podman and runc (Debian packages)"
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq podman runc; } >/tmp/reconcile-podman-install.log 2>&1; then
            tail -n 20 /tmp/reconcile-podman-install.log >&2
            skip_or_fail "podman could not be installed (log above)"
        fi
        engine=podman
    else
        skip_or_fail "no podman, no docker daemon, and podman cannot be installed here (not root or no apt-get)"
    fi
fi
command -v "$engine" >/dev/null || skip_or_fail "$engine not found"
if [ "$engine" = podman ] && ! command -v "${CONTAINER_RUNTIME-runc}" >/dev/null 2>&1 \
    && [ -n "${CONTAINER_RUNTIME-runc}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq runc >/dev/null 2>&1 || true
fi

runtime="${CONTAINER_RUNTIME-runc}"
ulimits="${CONTAINER_ULIMITS-"--ulimit nofile=1024:1024 --ulimit nproc=1024:1024"}"
network="${CONTAINER_NETWORK-none}"
# Word splitting of the settings is intended: they are option lists.
engine_flags=()
[ -n "$runtime" ] && engine_flags+=(--runtime "$runtime")
run_flags=()
# shellcheck disable=SC2206
[ -n "$ulimits" ] && run_flags+=($ulimits)
[ -n "$network" ] && run_flags+=(--network "$network")

# --- the binary -------------------------------------------------------------
bin="${RECONCILE_BIN:-target/release/reconcile}"
if [ ! -x "$bin" ]; then
    say "container: $bin absent: cargo build --release --locked"
    cargo build --release --locked
fi
version="$("$bin" --version | awk '{print $2}')"
image="${IMAGE:-reconcile:$version}"

# --- the root filesystem ----------------------------------------------------
ctx="$(mktemp -d)"
smoke_dir=""
volume=""
cleanup() {
    rm -rf "$ctx"
    [ -n "$smoke_dir" ] && rm -rf "$smoke_dir"
    [ -n "$volume" ] && "$engine" volume rm -f "$volume" >/dev/null 2>&1
    return 0
}
trap cleanup EXIT

root="$ctx/rootfs"
install -d "$root/usr/bin" "$root/etc" "$ctx/state"
install -m 0755 "$bin" "$root/usr/bin/reconcile"
strip --strip-unneeded "$root/usr/bin/reconcile" 2>/dev/null || true
# Every library the dynamic loader resolves, the loader included, at the
# path it resolved it from (the loader finds them there without a cache).
libs=$(ldd "$bin" | awk '/=> \// {print $3} /^[ \t]*\// {print $1}')
[ -n "$libs" ] || { say "container: ldd listed no library for $bin"; exit 1; }
for lib in $libs; do
    install -d "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
# /tmp: `demo` keeps its temporary sidecar there (1777 like any /tmp).
install -d -m 1777 "$root/tmp"
# Names for the numeric ids, for tools that print them; nothing requires it.
printf 'root:x:0:0:root:/:/nonexistent\nreconcile:x:65532:65532:reconcile:/var/lib/reconcile:/nonexistent\n' >"$root/etc/passwd"
printf 'root:x:0:\nreconcile:x:65532:\n' >"$root/etc/group"
cp packaging/container/Containerfile "$ctx/Containerfile"

old_id=$("$engine" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
say "container: building $image with $engine (libraries: $(echo $libs | tr '\n' ' '))"
"$engine" build "${engine_flags[@]}" --build-arg "VERSION=$version" -t "$image" -f "$ctx/Containerfile" "$ctx"

# A rebuild moves the tag: drop the image it leaves untagged.
new_id=$("$engine" image inspect --format '{{.Id}}' "$image")
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then
    "$engine" rmi "$old_id" >/dev/null 2>&1 || true
fi

size=$("$engine" image inspect --format '{{.Size}}' "$image")
printf 'container: image %s: %s bytes (%s MB)\n' "$image" "$size" "$(awk -v s="$size" 'BEGIN {printf "%.1f", s / 1000000}')"

[ "${SMOKE:-1}" = 1 ] || exit 0

# --- the smoke test ---------------------------------------------------------
run() { "$engine" run --rm "${engine_flags[@]}" "${run_flags[@]}" "$@"; }

say "container: smoke: --version"
got="$(run "$image" --version)"
[ "$got" = "reconcile $version" ] || { say "unexpected --version: $got"; exit 1; }

say "container: smoke: demo"
run "$image" demo >"$ctx/demo.out" || { cat "$ctx/demo.out" >&2; exit 1; }
grep -q advanced "$ctx/demo.out" || { say "demo advanced nothing:"; cat "$ctx/demo.out" >&2; exit 1; }

say "container: smoke: check --offline, config read-only, state on a volume"
smoke_dir="$(mktemp -d)"
cat >"$smoke_dir/reconcile.toml" <<'TOML'
[orchestrator]
url = "http://orchestrator.invalid:8000"

[plane]
url = "https://plane.invalid"
workspace = "acme"

[[projects]]
repo = "acme/shop"
plane_project_id = "00000000-0000-0000-0000-000000000000"
TOML
# As the README recommends: root-owned, readable by the service's group.
chmod 0640 "$smoke_dir/reconcile.toml"
chown 0:65532 "$smoke_dir/reconcile.toml" 2>/dev/null || chmod 0644 "$smoke_dir/reconcile.toml"
volume="reconcile-smoke-$$"
"$engine" volume create "$volume" >/dev/null
mounts=(-v "$smoke_dir/reconcile.toml:/etc/reconcile/reconcile.toml:ro" -v "$volume:/var/lib/reconcile")
run "${mounts[@]}" "$image" check --offline

# The state volume is writable by the image's user and outlives the
# container: a kill-switch tick (contacts nothing) records itself in the
# sidecar, and the next container reads it back.
say "container: smoke: a tick writes the sidecar on the volume, the next container reads it"
run "${mounts[@]}" -e ORCH_RECONCILE_ENABLED=false \
    -e RECONCILE_ORCHESTRATOR_TOKEN=smoke -e RECONCILE_PLANE_API_KEY=smoke \
    "$image" -q all
status="$(run "${mounts[@]}" "$image" -o json status)"
case "$status" in
*'"ticks_total": 1'* | *'"ticks_total":1'*) ;;
*)
    say "status after one tick does not count it: $status"
    exit 1
    ;;
esac
echo "container: smoke test passed ($image, $size bytes)"
