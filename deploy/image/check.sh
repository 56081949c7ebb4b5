#!/usr/bin/env bash
# Builds agw's container image from the Containerfile and checks it without running a
# container (this sandbox, like many CI machines, has no cgroup controllers for podman run):
# the image's filesystem is exported and its binary run under chroot as the image's user.
#
#   deploy/image/check.sh          # from anywhere in the repository; needs root (chroot),
#                                  # podman, python3, curl; ~3-8 min (a static release build)
#
# What it checks:
#   - the image config: user 65532:65532, ports 8080 and 9091, the serve command;
#   - the filesystem: exactly the binary, /etc/{passwd,group,hosts,nsswitch.conf} and the
#     default config — no shell; the binary runs with no libc next to it (static);
#   - `agw --version` and `agw check --config /etc/agw/config.yaml` from the image;
#   - the image's own serve command (its listen addresses moved to free loopback ports) in front
#     of agw-mock on the host, with the backend named by host name (`localhost`, resolved by
#     static glibc through the image's /etc/hosts): /healthz and /readyz on the admin port, a
#     clean prompt answered by the mock, a `credit card` prompt rejected by agw and never
#     forwarded, then SIGTERM → a clean exit.
#
# Podman keeps its storage in a temporary directory (vfs driver) removed at exit, so the
# machine's own images and containers are never touched. Everything started here is stopped
# by its process id on exit, also on failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

TARGET=x86_64-unknown-linux-gnu
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
IMAGE="localhost/agw:${VERSION}"
WAIT_SECS=30

say() { echo "image-check: $*"; }
fail() {
  echo "image-check: FAILED: $*" >&2
  for f in mock.out agw.out agw.err; do
    if [ -s "$WORK/$f" ]; then
      echo "--- $f" >&2
      tail -20 "$WORK/$f" >&2
    fi
  done
  exit 1
}

[ "$(id -u)" = 0 ] || { echo "image-check: needs root (chroot)" >&2; exit 1; }
for tool in podman python3 curl chroot tar; do
  command -v "$tool" >/dev/null || { echo "image-check: \`$tool\` is not installed" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/agw-image-check.XXXXXX)
NAME="agw-image-check-$$"
PIDS=()
pm() { podman --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs \
  --events-backend file --log-level error "$@"; }
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  pm rm -f "$NAME" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. The static binaries (agw for the image, agw-mock to run on the host).
say "building static agw and agw-mock ($TARGET, release)"
RUSTFLAGS='-C target-feature=+crt-static' CARGO_PROFILE_RELEASE_STRIP=symbols \
  cargo build --release --target "$TARGET" -p agw-bin -p agw-mock
BIN="target/$TARGET/release"

# 2. The image, exactly as the Containerfile documents it.
say "building $IMAGE"
pm build --isolation chroot -t "$IMAGE" -f Containerfile . >"$WORK/build.log" 2>&1 ||
  { cat "$WORK/build.log" >&2; fail "podman build"; }

pm image inspect --format '{{json .Config}}' "$IMAGE" >"$WORK/config.json"
python3 - "$WORK/config.json" >"$WORK/cmd" <<'EOF' || fail "image config: see above"
import json, sys
c = json.load(open(sys.argv[1]))
problems = []
if c.get("User") != "65532:65532":
    problems.append(f"User is {c.get('User')!r}, expected '65532:65532'")
ports = sorted(c.get("ExposedPorts") or {})
if ports != ["8080/tcp", "9091/tcp"]:
    problems.append(f"ExposedPorts {ports}, expected 8080/tcp and 9091/tcp")
if c.get("Entrypoint") != ["/usr/local/bin/agw"]:
    problems.append(f"Entrypoint {c.get('Entrypoint')}")
cmd = c.get("Cmd") or []
for flag, value in [("--config", "/etc/agw/config.yaml"), ("--listen", "0.0.0.0:8080"),
                    ("--admin-listen", "0.0.0.0:9091")]:
    if flag not in cmd or cmd.index(flag) + 1 >= len(cmd) or cmd[cmd.index(flag) + 1] != value:
        problems.append(f"Cmd {cmd} lacks `{flag} {value}`")
for p in problems:
    print("image config:", p, file=sys.stderr)
if problems:
    sys.exit(1)
print("\0".join(c["Entrypoint"] + cmd), end="")
EOF
say "image config: user 65532:65532, ports 8080 and 9091, $(tr '\0' ' ' <"$WORK/cmd")"

# 3. Its filesystem, unpacked without running anything.
pm create --name "$NAME" "$IMAGE" >/dev/null
ROOT="$WORK/rootfs"
mkdir "$ROOT"
pm export "$NAME" | tar -x -C "$ROOT"
expected="./etc/agw/config.yaml ./etc/group ./etc/hosts ./etc/nsswitch.conf ./etc/passwd ./usr/local/bin/agw "
# podman create may leave empty run-time files (e.g. /etc/hostname, /etc/resolv.conf,
# /run/.containerenv); only non-empty files count.
files=$(cd "$ROOT" && find . \( -type f -o -type l \) -size +0 | sort | tr '\n' ' ')
[ "$files" = "$expected" ] || fail "image files: $files (expected: $expected)"
[ -x "$ROOT/usr/local/bin/agw" ] || fail "/usr/local/bin/agw is not executable"
say "image files: $files"

# Run a command from the image as its user, with an empty environment (no host variables,
# no provider key) and no libc or shell next to it.
CHROOT=$(command -v chroot)
in_image() { env -i "$CHROOT" --userspec=65532:65532 "$ROOT" "$@"; }

out=$(in_image /usr/local/bin/agw --version) || fail "agw --version"
[ "$out" = "agw $VERSION" ] || fail "agw --version printed '$out', expected 'agw $VERSION'"
say "$out (static: runs with no libc in the image)"
out=$(in_image /usr/local/bin/agw check --config /etc/agw/config.yaml) ||
  fail "agw check --config /etc/agw/config.yaml: $out"
case "$out" in "ok: "*) ;; *) fail "agw check printed: $out" ;; esac
say "agw check: ${out%%$'\n'*}"

# 4. A guarded request through the image's serve command.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_line() { # FILE PREFIX PID: prints the first line of FILE starting with PREFIX
  local i line
  for ((i = 0; i < WAIT_SECS * 10; i++)); do
    line=$(grep -m1 "^$2" "$1" 2>/dev/null || true)
    if [ -n "$line" ]; then echo "$line"; return 0; fi
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

"$BIN/agw-mock" --listen 127.0.0.1:0 >"$WORK/mock.out" 2>&1 &
PIDS+=($!)
line=$(wait_line "$WORK/mock.out" "agw-mock listening on " "${PIDS[-1]}") || fail "agw-mock did not start"
MOCK_URL=${line#agw-mock listening on }
MOCK_PORT=${MOCK_URL##*:}

ADMIN_PORT=$(free_port)
mapfile -d '' -t cmd <"$WORK/cmd"
args=()
for ((i = 0; i < ${#cmd[@]}; i++)); do
  case "${cmd[i]}" in
    --listen) args+=(--listen 127.0.0.1:0); i=$((i + 1)) ;;
    --admin-listen) args+=(--admin-listen "127.0.0.1:$ADMIN_PORT"); i=$((i + 1)) ;;
    *) args+=("${cmd[i]}") ;;
  esac
done
args+=(--base-url "http://localhost:$MOCK_PORT")
say "serving: ${args[*]}"
# Not through in_image: $! must be agw's own pid (env and chroot exec it), not a subshell's.
env -i "$CHROOT" --userspec=65532:65532 "$ROOT" "${args[@]}" >"$WORK/agw.out" 2>"$WORK/agw.err" &
AGW_PID=$!
PIDS+=("$AGW_PID")
line=$(wait_line "$WORK/agw.out" "agw listening on " "$AGW_PID") || fail "agw serve did not start"
URL=$(echo "$line" | sed -n 's/^agw listening on \(http:\/\/[^ ]*\) .*/\1/p')
ADMIN="http://127.0.0.1:$ADMIN_PORT"

get_status() { curl -s -o "$WORK/body" -w '%{http_code}' -m 10 "$@" || true; }
for path in /healthz /readyz; do
  status=000
  for ((i = 0; i < WAIT_SECS * 10; i++)); do
    status=$(get_status "$ADMIN$path")
    [ "$status" = 200 ] && break
    kill -0 "$AGW_PID" 2>/dev/null || break
    sleep 0.1
  done
  [ "$status" = 200 ] || fail "admin $path answered $status: $(cat "$WORK/body" 2>/dev/null)"
  say "admin $path: 200 $(cat "$WORK/body")"
done

post() { # BODY: POSTs an Anthropic Messages request through agw
  get_status "$URL/v1/messages" -H 'content-type: application/json' \
    -H 'anthropic-version: 2023-06-01' -H 'x-api-key: sk-ant-image-check' --data-binary "$1"
}
status=$(post '{"model":"claude-x","max_tokens":16,"messages":[{"role":"user","content":"What is a credit card?"}]}')
[ "$status" = 400 ] && grep -q 'Rejected due to inappropriate content' "$WORK/body" ||
  fail "credit card prompt: $status $(cat "$WORK/body")"
say "credit card prompt: 400 $(cat "$WORK/body")"
status=$(get_status "$MOCK_URL/__mock/requests")
[ "$(cat "$WORK/body")" = "[]" ] || fail "the rejected prompt reached the provider: $(cat "$WORK/body")"
status=$(post '{"model":"claude-x","max_tokens":16,"messages":[{"role":"user","content":"Say hello"}]}')
[ "$status" = 200 ] && grep -q 'Hello from the mock provider' "$WORK/body" ||
  fail "clean prompt: $status $(cat "$WORK/body")"
say "clean prompt: 200 $(head -c 120 "$WORK/body")..."
get_status "$MOCK_URL/__mock/requests" >/dev/null
grep -q '"x-api-key":"sk-ant-image-check"' "$WORK/body" ||
  fail "the client's key was not passed through: $(head -c 400 "$WORK/body")"

# 5. SIGTERM: a clean exit.
kill -TERM "$AGW_PID"
for ((i = 0; i < WAIT_SECS * 10; i++)); do
  kill -0 "$AGW_PID" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$AGW_PID" 2>/dev/null && fail "agw did not stop within ${WAIT_SECS}s of SIGTERM"
code=0
wait "$AGW_PID" || code=$?
[ "$code" = 0 ] || fail "agw exited with $code after SIGTERM"
say "SIGTERM: exited 0"
say "ok: $IMAGE"
