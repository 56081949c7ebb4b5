#!/usr/bin/env python3
"""Writes agw-bin/hot-symbols.txt: the functions a request runs, for the linker to lay out
together at the start of the release binary's code (agw-bin/build.rs passes the file to lld).

    python3 benches/load/hot_symbols.py        # ~2-4 min; needs valgrind, a release build:
                                               # cargo build --release -p agw-bin -p agw-mock

agw runs under valgrind's callgrind in three configurations (the built-in default with an
OpenAI backend beside it, a team in memory, a team in Redis when redis-server is on PATH) and
serves a mix of requests from one client: Anthropic Messages and OpenAI chat, JSON and
streamed, a 2 KB chat and an 80 KB Claude Code turn, a rejected prompt. Every function of
agw's own binary called at least once per ten requests is listed, the most called first.

Why: at one request at a time the caches and TLBs are cold for each request, and agw's
request path is ~160 KB of code spread over ~220 of the binary's 4 KiB pages; packed, it is
~45 pages. The user-space CPU per request at c=1 drops by about a sixth (docs/performance-
log.md, 2026-11-29, sixth session).

With `--pgo RAW_DIR AGW MINPROXY` (pgo/train runs it) the same requests are served, without
valgrind and ten times over (half of it over eight connections at once), by an agw and a
minproxy built with `-Cprofile-generate`, which write their counters to RAW_DIR as they exit.

The names carry rustc's hashes, which change with the toolchain, the dependencies' versions,
the profile and RUSTFLAGS, and for generic code with the types it is used with: rerun this
after such changes. A stale entry is ignored by the linker; a stale file costs only speed.
"""

import collections
import concurrent.futures
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RELEASE = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release")
OUT = os.path.join(ROOT, "agw-bin", "hot-symbols.txt")
ROUNDS = 40  # request mixes per configuration
MIN_PER_REQUEST = 0.1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, what, secs=60):
    deadline = time.time() + secs
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"hot-symbols: {what} exited early ({proc.returncode})")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"hot-symbols: {what} did not listen on {port} within {secs} s")


def prose(rng, n):
    words = "the quick brown fox jumps over lazy dog while tests run and code compiles".split()
    out = []
    while sum(len(w) + 1 for w in out) < n:
        out.append(rng.choice(words))
    return " ".join(out)


def bodies():
    rng = random.Random(7)
    msgs = [{"role": "user" if i % 2 == 0 else "assistant", "content": prose(rng, 330)}
            for i in range(4)]
    chat = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "system": prose(rng, 300),
            "messages": msgs}
    tools = [{"name": f"tool_{i}", "description": prose(rng, 600),
              "input_schema": {"type": "object", "properties": {
                  f"arg{j}": {"type": "string", "description": prose(rng, 120)}
                  for j in range(6)}}} for i in range(40)]
    turn = [{"type": "text", "text": "<system-reminder>\n" + prose(rng, 6000) + "\n</system-reminder>"},
            {"type": "text", "text": prose(rng, 2000)}]
    code = {"model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": True,
            "system": [{"type": "text", "text": prose(rng, 9000),
                        "cache_control": {"type": "ephemeral"}}],
            "tools": tools, "messages": [{"role": "user", "content": turn}]}
    stream = dict(chat, stream=True)
    rejected = dict(chat, messages=[{"role": "user", "content": "my credit card is on file"}])
    openai = {"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": prose(rng, 300)},
        {"role": "user", "content": prose(rng, 1200)}]}
    openai_stream = dict(openai, stream=True, stream_options={"include_usage": True})
    enc = lambda b: json.dumps(b, separators=(",", ":")).encode()
    mix = [("/v1/messages", enc(chat))] * 6 + [
        ("/v1/messages", enc(stream)), ("/v1/messages", enc(stream)),
        ("/v1/messages", enc(code)), ("/v1/messages", enc(rejected))]
    openai_mix = [("/v1/chat/completions", enc(openai)),
                  ("/v1/chat/completions", enc(openai_stream))]
    return mix, openai_mix


def drive(port, key, mix, rounds):
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    sent = 0
    for _ in range(rounds):
        for path, body in mix:
            headers = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
            if path.startswith("/v1/chat"):
                headers["authorization"] = f"Bearer {key}"
            else:
                headers["x-api-key"] = key
            con.request("POST", path, body=body, headers=headers)
            resp = con.getresponse()
            resp.read()
            if resp.status not in (200, 400):
                sys.exit(f"hot-symbols: {path} answered {resp.status}")
            sent += 1
    con.close()
    return sent


def profile(agw, args, out, key, mix, pgo=None):
    port = free_port()
    cmd = [agw, "serve", *args, "--listen", f"127.0.0.1:{port}", "--access-log", "stderr"]
    env = None
    if pgo:
        env = dict(os.environ, LLVM_PROFILE_FILE=os.path.join(pgo, "agw-%p.profraw"))
    else:
        cmd = ["valgrind", "--tool=callgrind", "--demangle=no", "--compress-strings=no",
               f"--callgrind-out-file={out}"] + cmd
    log = open(out + ".log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
    try:
        wait_port(port, proc, "agw", 120)
        sent = drive(port, key, mix, ROUNDS) if not pgo else train(port, key, mix)
    finally:
        interrupt(proc)
    return sent


def train(port, key, mix):
    """For a profile: the mix one request at a time, then as much again over eight connections
    at once (the paths a busy server takes: several connections ready at each wake-up)."""
    sent = drive(port, key, mix, ROUNDS * 5)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        runs = [pool.submit(drive, port, key, mix, ROUNDS * 5 // 8) for _ in range(8)]
        sent += sum(run.result() for run in runs)
    return sent


def interrupt(proc):
    """Ends a server as Ctrl-C does, so that valgrind or the profile runtime writes its file."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def train_minproxy(minproxy, upstream, raw, mix):
    env = dict(os.environ, LLVM_PROFILE_FILE=os.path.join(raw, "minproxy-%p.profraw"))
    proc = subprocess.Popen([minproxy, "--upstream", upstream], stdout=subprocess.PIPE,
                            env=env, text=True)
    try:
        line = proc.stdout.readline()
        if "listening on http://" not in line:
            sys.exit(f"hot-symbols: minproxy did not start: {line!r}")
        port = int(line.rsplit(":", 1)[1])
        return train(port, "sk-any", mix)
    finally:
        interrupt(proc)


def calls(path):
    """Calls per function of agw's own object in a callgrind file."""
    objects, count, cfn = {}, collections.Counter(), None
    ob = None
    for line in open(path):
        if line.startswith("ob="):
            ob = line[3:].strip()
        elif line.startswith("fn="):
            objects[line[3:].strip().split("'")[0]] = ob
        elif line.startswith("cfn="):
            cfn = line[4:].strip().split("'")[0]
        elif line.startswith("calls="):
            count[cfn] += int(line[6:].split()[0])
    return {f: c for f, c in count.items()
            if objects.get(f, "").endswith("/agw") and f.startswith("_")}


def main():
    agw, mock = os.path.join(RELEASE, "agw"), os.path.join(RELEASE, "agw-mock")
    pgo = minproxy = None
    args = sys.argv[1:]
    if args[:1] == ["--pgo"] and len(args) == 4:
        pgo, agw, minproxy = (os.path.abspath(a) for a in args[1:])
    elif args:
        sys.exit("usage: hot_symbols.py [--pgo RAW_DIR INSTRUMENTED_AGW INSTRUMENTED_MINPROXY]")
    if not pgo and not shutil.which("valgrind"):
        sys.exit("hot-symbols: `valgrind` is not installed")
    for b in (agw, mock):
        if not os.path.exists(b):
            sys.exit("hot-symbols: build first: cargo build --release -p agw-bin -p agw-mock")
    work = tempfile.mkdtemp(prefix="agw-hot-symbols.")
    procs = []
    try:
        mock_port = free_port()
        procs.append(subprocess.Popen([mock, "--listen", f"127.0.0.1:{mock_port}",
                                       "--max-recorded", "0"], stdout=subprocess.DEVNULL))
        wait_port(mock_port, procs[-1], "agw-mock")
        mock_url = f"http://127.0.0.1:{mock_port}"
        mix, openai_mix = bodies()
        guard = """    guards:
      request:
        - name: credit-card
          regex: ["credit card"]
          action: reject
          message: Rejected due to inappropriate content
"""
        backends = f"""backends:
  - name: anthropic
    provider: anthropic
    base_url: "{mock_url}"
    api_key: sk-ant-hot-symbols-upstream
    routes:
      /v1/messages: Messages
      /v1/messages/count_tokens: CountTokens
      /v1/models: Models
{guard}  - name: openai
    provider: openai
    base_url: "{mock_url}"
    api_key: sk-hot-symbols-upstream
{guard}"""
        configs = [("default", f"admin_listen: off\n{backends}")]
        keys = os.path.join(work, "keys.json")
        team = f"""admin_listen: 127.0.0.1:0
auth:
  keys: {{file: "{keys}"}}
  allow_unauthenticated: false
{{redis}}limits:
  per_key: {{{{requests_per_minute: 1000000000}}}}
prices:
  - {{{{model: "claude-sonnet-*", input: 3, output: 15, cache_write: 3.75, cache_read: 0.3}}}}
  - {{{{model: "gpt-4o-mini", input: 0.15, output: 0.6}}}}
metrics: {{{{}}}}
{backends}"""
        configs.append(("team", team.replace("{redis}", "").replace("{{", "{").replace("}}", "}")))
        redis = shutil.which("redis-server")
        if redis:
            rport = free_port()
            procs.append(subprocess.Popen([redis, "--port", str(rport), "--bind", "127.0.0.1",
                                           "--save", "", "--appendonly", "no"],
                                          stdout=subprocess.DEVNULL))
            wait_port(rport, procs[-1], "redis-server")
            configs.append(("team-redis", team.replace(
                "{redis}", f'redis: {{url: "redis://127.0.0.1:{rport}"}}\n')
                .replace("{{", "{").replace("}}", "}")))
        total = collections.Counter()
        seen = set()
        for name, text in configs:
            cfg = os.path.join(work, f"{name}.yaml")
            with open(cfg, "w") as f:
                f.write(text)
            key = "sk-any"
            if name.startswith("team"):
                created = subprocess.run([agw, "keys", "--config", cfg, "create", "--name",
                                          f"hot-{name}"], capture_output=True, text=True,
                                         check=True)
                key = created.stdout.strip().splitlines()[-1]
            out = os.path.join(work, f"{name}.cg")
            sent = profile(agw, ["--config", cfg], out, key, mix + openai_mix, pgo)
            print(f"hot-symbols: {name}: {sent} requests profiled", file=sys.stderr)
            if pgo:
                continue
            for f, c in calls(out).items():
                total[f] += c / sent
                seen.add(f)
        if pgo:
            # The load bench's floor is trained on the same requests, so that the comparison
            # is between two programs built the same way.
            sent = train_minproxy(minproxy, mock_url, pgo, mix + openai_mix)
            print(f"hot-symbols: minproxy: {sent} requests profiled", file=sys.stderr)
            return
        n = len(configs)
        hot = sorted(((c / n, f) for f, c in total.items() if c / n >= MIN_PER_REQUEST),
                     key=lambda x: (-x[0], x[1]))
        # Then everything else that ran at all (start-up, configuration, the first request's
        # set-up), together: the kernel maps a binary's code 64 KiB around each page a process
        # touches, so start-up code spread over the whole binary makes most of it resident.
        listed = {f for _, f in hot}
        warm = sorted(seen - listed)
        with open(OUT, "w") as f:
            f.write("".join(name + "\n" for _, name in hot))
            f.write("".join(name + "\n" for name in warm))
        print(f"hot-symbols: {len(hot)} hot and {len(warm)} other functions written to "
              f"{os.path.relpath(OUT, ROOT)}", file=sys.stderr)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
