#!/usr/bin/env python3
"""Helpers for bench/run (standard library only).

    bench.py login URL USER PASSWORD        sign in through the login page,
                                            print the latch_session cookie
    bench.py token URL USER PASSWORD        GET /api/token, print the token
    bench.py nfa-cookie SECRET USER         the cookie JWT nforwardauth signs
                                            at login (HS256, no expiry)
    bench.py startup RESULTS RUNS LOG [KEY=VALUE...] -- CMD...
                                            spawn CMD RUNS times; time
                                            "listening on" and "revocations
                                            loaded" on its stderr; append
    bench.py wrk RESULTS SCENARIO SERVER ROUND POLICY WRK_OUTPUT
                                            read the BENCH_JSON line that
                                            bench/stats.lua printed, check it
                                            (POLICY: strict = no non-2xx,
                                            flood = anything goes), append it
    bench.py record RESULTS KIND KEY=VALUE...
                                            append any other record
    bench.py report RESULTS                 print the tables and targets;
                                            exit 3 when a target fails

RESULTS is a file of JSON lines, one record each.
"""

import http.client
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

# Socket errors (connect, read, write, timeout) tolerated in a wrk run before
# it counts as failed: "occasional ones", as a share of completed requests.
SOCKET_ERROR_SHARE = float(os.environ.get("SOCKET_ERROR_SHARE", "0.001"))


def die(msg):
    print(f"bench/run: {msg}", file=sys.stderr)
    sys.exit(1)


# --- talking to latch -------------------------------------------------------


def split_url(url):
    u = urllib.parse.urlsplit(url)
    return u.hostname, u.port or 80


def login(url, user, password):
    """GET /login for the form cookie and csrf field, POST /login, return the
    latch_session cookie value from the 303."""
    host, port = split_url(url)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("GET", "/login")
    res = conn.getresponse()
    page = res.read().decode("utf-8", "replace")
    if res.status != 200:
        die(f"GET /login answered {res.status}")
    form = None
    for value in res.headers.get_all("Set-Cookie") or []:
        m = re.match(r"\s*latch_form=([^;]*)", value)
        if m:
            form = m.group(1)
    if form is None:
        die("GET /login set no latch_form cookie")
    m = re.search(r'name="csrf"\s+value="([^"]*)"', page)
    if not m:
        die("GET /login has no csrf field")
    body = urllib.parse.urlencode(
        {"csrf": m.group(1), "username": user, "password": password}
    )
    conn.request(
        "POST",
        "/login",
        body=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"latch_form={form}",
        },
    )
    res = conn.getresponse()
    res.read()
    if res.status != 303:
        die(f"POST /login answered {res.status}, expected 303")
    for value in res.headers.get_all("Set-Cookie") or []:
        m = re.match(r"\s*latch_session=([^;]+)", value)
        if m:
            return m.group(1)
    die("POST /login set no latch_session cookie")


def token(url, user, password):
    import base64

    host, port = split_url(url)
    conn = http.client.HTTPConnection(host, port, timeout=60)
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    conn.request("GET", "/api/token", headers={"Authorization": f"Basic {basic}"})
    res = conn.getresponse()
    body = res.read()
    if res.status != 200:
        die(f"GET /api/token answered {res.status}: {body[:200]!r}")
    return json.loads(body)["token"]


def nfa_cookie(secret, user):
    """The JWT nforwardauth sets at login: HS256 over
    {"authenticated": "true", "user": USER}, with no expiry."""
    import base64
    import hashlib
    import hmac

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    def part(obj):
        return b64(json.dumps(obj, separators=(",", ":")).encode())

    signed = part({"alg": "HS256"}) + "." + part({"authenticated": "true", "user": user})
    mac = hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest()
    return signed + "." + b64(mac)


def totp_code(secret_b32, at):
    """RFC 6238: SHA-1, six digits, 30-second steps."""
    import base64
    import hashlib
    import hmac
    import struct

    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1000000:06d}"


def enrol(url, user, password):
    """Registers USER and turns on a second factor for it (POST /api/totp,
    then /api/totp/confirm with a code computed here)."""
    import base64
    import time

    host, port = split_url(url)
    conn = http.client.HTTPConnection(host, port, timeout=60)
    body = json.dumps({"username": user, "password": password})
    conn.request("POST", "/api/users", body=body, headers={"Content-Type": "application/json"})
    res = conn.getresponse()
    if res.status != 201:
        die(f"POST /api/users answered {res.status}: {res.read()[:200]!r}")
    res.read()
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    auth = {"Authorization": f"Basic {basic}", "Content-Type": "application/json"}
    conn.request("POST", "/api/totp", body="{}", headers=auth)
    res = conn.getresponse()
    answer = res.read()
    if res.status != 200:
        die(f"POST /api/totp answered {res.status}: {answer[:200]!r}")
    secret = json.loads(answer)["secret"]
    code = totp_code(secret, time.time())
    conn.request("POST", "/api/totp/confirm", body=json.dumps({"code": code}), headers=auth)
    res = conn.getresponse()
    answer = res.read()
    if res.status != 200:
        die(f"POST /api/totp/confirm answered {res.status}: {answer[:200]!r}")


# --- start-up timing ---------------------------------------------------------


def startup(results, runs, log_path, extra, cmd):
    """Spawns cmd `runs` times. For each: wall time from spawn to the stderr
    line "listening on ..." and to the line containing "revocations loaded";
    then SIGTERM and wait for it to exit."""
    listening, loaded = [], []
    child = None

    def on_term(signum, frame):
        raise SystemExit(1)

    signal.signal(signal.SIGTERM, on_term)
    try:
        with open(log_path, "a") as log:
            for run in range(runs):
                marks = {}
                done = threading.Event()
                t0 = time.monotonic()
                child = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.PIPE
                )

                def read(pipe=child.stderr, marks=marks, done=done):
                    for raw in pipe:
                        now = time.monotonic()
                        line = raw.decode("utf-8", "replace")
                        log.write(line)
                        log.flush()
                        if "listening on" in line and "listening" not in marks:
                            marks["listening"] = now
                        if "revocations loaded" in line and "loaded" not in marks:
                            marks["loaded"] = now
                            done.set()
                    done.set()

                reader = threading.Thread(target=read, daemon=True)
                reader.start()
                if not done.wait(600) or "loaded" not in marks:
                    die(
                        f"start-up run {run + 1}: no 'revocations loaded' line "
                        f"(see {log_path})"
                    )
                if "listening" not in marks:
                    die(f"start-up run {run + 1}: no 'listening on' line")
                listening.append((marks["listening"] - t0) * 1000)
                loaded.append((marks["loaded"] - t0) * 1000)
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(60)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
                    die("latch did not stop within 60 s of SIGTERM")
                reader.join(5)
                child = None
    finally:
        if child is not None and child.poll() is None:
            child.kill()
            child.wait()
    rec = {"kind": "startup", "listening_ms": listening, "loaded_ms": loaded}
    rec.update(extra)
    append(results, rec)
    print(
        "  start-up: listening on after "
        + ", ".join(f"{x:.1f}" for x in listening)
        + " ms; revocations loaded after "
        + ", ".join(f"{x:.1f}" for x in loaded)
        + " ms",
        file=sys.stderr,
    )


# --- results -------------------------------------------------------------------


def append(results, record):
    with open(results, "a") as f:
        f.write(json.dumps(record) + "\n")


def parse_value(v):
    try:
        return json.loads(v)
    except ValueError:
        return v


def record_wrk(results, scenario, server, rnd, policy, wrk_output):
    text = open(wrk_output).read()
    lines = [l for l in text.splitlines() if l.startswith("BENCH_JSON ")]
    if not lines:
        sys.stderr.write(text)
        die(f"scenario {scenario} {server} round {rnd}: no BENCH_JSON line from wrk")
    stats = json.loads(lines[-1][len("BENCH_JSON ") :])
    req = stats["requests"]
    socket_errors = (
        stats["connect_errors"]
        + stats["read_errors"]
        + stats["write_errors"]
        + stats["timeouts"]
    )
    where = f"scenario {scenario}, {server}, round {rnd}"
    if req == 0:
        sys.stderr.write(text)
        die(f"{where}: wrk completed no request")
    if socket_errors > max(1, SOCKET_ERROR_SHARE * req):
        sys.stderr.write(text)
        die(
            f"{where}: {socket_errors} socket errors in {req} requests "
            f"(more than {SOCKET_ERROR_SHARE:.1%}; wrk output above)"
        )
    if socket_errors:
        print(f"warning: {where}: {socket_errors} socket errors", file=sys.stderr)
    if policy == "strict" and stats["non_2xx_3xx"]:
        sys.stderr.write(text)
        die(f"{where}: {stats['non_2xx_3xx']} non-2xx/3xx answers (wrk output above)")
    stats.update(
        kind="wrk",
        scenario=scenario,
        server=server,
        round=int(rnd),
        rps=req / (stats["duration_us"] / 1e6),
        socket_errors=socket_errors,
    )
    append(results, stats)
    print(
        f"  {where}: {stats['rps']:10.0f} req/s  p50 {stats['p50_us'] / 1000:7.3f} ms"
        f"  p99 {stats['p99_us'] / 1000:7.3f} ms",
        file=sys.stderr,
    )


# --- report --------------------------------------------------------------------


def load(results):
    recs = []
    with open(results) as f:
        for line in f:
            if line.strip():
                recs.append(json.loads(line))
    return recs


def count(n):
    """1000000 -> 1M, 20000 -> 20k."""
    if not isinstance(n, int):
        return "?"
    for div, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= div and n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(v, spec, none="n/a"):
    return none if v is None else format(v, spec)


def report(results):
    recs = load(results)
    meta = {}
    for r in recs:
        if r["kind"] == "meta":
            meta.update(r)
    wrk = [r for r in recs if r["kind"] == "wrk"]
    rss = {str(r["scenario"]): r["kib"] for r in recs if r["kind"] == "rss"}
    startup = next((r for r in recs if r["kind"] == "startup"), None)
    seed = next((r for r in recs if r["kind"] == "seed"), None)
    disk = next((r for r in recs if r["kind"] == "disk"), None)

    def runs(scenario, server):
        return [r for r in wrk if r["scenario"] == scenario and r["server"] == server]

    def summary(scenario, server):
        rs = runs(scenario, server)
        if not rs:
            return None
        return {
            "rps": med([r["rps"] for r in rs]),
            "p50": med([r["p50_us"] / 1000 for r in rs]),
            "p99": med([r["p99_us"] / 1000 for r in rs]),
            "n": len(rs),
        }

    def paired(scenario, a, b):
        """The median of a/b req/s over neighbouring rounds: each round of
        `a` against the nearest round of `b` before it and the nearest
        after it, in the order they ran (the servers take turns). The
        machine's speed moves between two levels for seconds at a time
        (pinned or not, see BENCHMARKS.md): a ratio of the two medians
        can take one side's median from slow rounds and the other's from
        fast ones, while neighbouring rounds mostly share a level, and a
        pair split by a change is an outlier the median leaves out (with
        three rounds or more). Pairing both ways cancels what running
        first or second does to a round."""
        seq = [r for r in wrk if r["scenario"] == scenario and r["server"] in (a, b)]
        ratios = []
        for i, r in enumerate(seq):
            if r["server"] != a:
                continue
            before = next((x for x in reversed(seq[:i]) if x["server"] == b), None)
            after = next((x for x in seq[i + 1 :] if x["server"] == b), None)
            ratios += [r["rps"] / x["rps"] for x in (before, after) if x]
        return med(ratios)

    out = []
    p = out.append

    p("Per run (wrk; p50/p99 in ms):")
    p("")
    p("| scenario | server | round | requests | req/s | p50 | p99 | max | non-2xx | socket errors |")
    p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in wrk:
        p(
            f"| {r['scenario']} | {r['server']} | {r['round']} | {r['requests']} "
            f"| {r['rps']:.0f} | {r['p50_us'] / 1000:.3f} | {r['p99_us'] / 1000:.3f} "
            f"| {r['latency_max_us'] / 1000:.1f} | {r['non_2xx_3xx']} | {r['socket_errors']} |"
        )
    p("")

    names = {
        "1": "Bearer token, GET /api/resource",
        "2": "forward auth, GET /auth with session cookie",
        "3": "same Basic user:password, GET /api/resource (cached)",
        "4": f"Bearer during a login flood (scrypt ln={meta.get('flood_log_n', '?')})",
        "5": f"Bearer, {count(meta.get('big_users'))} users + "
        f"{count(meta.get('big_revocations'))} revocations + "
        f"{count(meta.get('big_sessions'))} sessions",
        "6": "forward auth, GET /auth with session cookie, 100 access rules",
        "7": "forward auth, GET /auth with session cookie (beside nforwardauth)",
    }
    s1 = summary("1", "latch")
    table = []
    for sc in ["1", "2", "3", "4", "5", "6", "7"]:
        lat = summary(sc, "latch")
        if lat is None:
            continue
        base = summary(sc, "hello")
        ratio = paired(sc, "latch", "hello") if base else None
        table.append((sc, lat, base, ratio))

    p(f"Summary (median of {meta.get('rounds', '?')} rounds per side; latency in ms; "
      "ratio = median of latch/hello req/s over neighbouring rounds, each latch round "
      "against the hello round before it and the one after; of medians = the two "
      "medians' ratio, shown):")
    p("")
    p("| # | scenario | latch req/s | p50 | p99 | hello req/s | hello p50 | hello p99 | ratio "
      "| of medians | latch RSS MiB |")
    p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for sc, lat, base, ratio in table:
        kib = rss.get(sc)
        if sc == "4":
            ratio_txt = (
                f"{lat['rps'] / s1['rps']:.3f} of idle #1" if s1 else "n/a"
            )
        else:
            ratio_txt = fmt(ratio, ".3f")
        p(
            f"| {sc} | {names[sc]} | {lat['rps']:.0f} | {lat['p50']:.3f} | {lat['p99']:.3f} "
            f"| {fmt(base and base['rps'], '.0f', '-')} | {fmt(base and base['p50'], '.3f', '-')} "
            f"| {fmt(base and base['p99'], '.3f', '-')} | {ratio_txt} "
            f"| {fmt(base and lat['rps'] / base['rps'], '.3f', '-')} "
            f"| {fmt(kib and kib / 1024, '.1f', '-')} |"
        )
    p("")

    nfa = summary("7", "nfa")
    if nfa:
        lat, base = summary("7", "latch"), summary("7", "hello")
        p(
            "Scenario 7, latch beside nforwardauth (the same request to each: "
            "both cookies and the proxy's X-Forwarded-* headers; median of "
            f"{nfa['n']} rounds, alternating latch, nforwardauth, hello):"
        )
        p("")
        p("| server | req/s | p50 ms | p99 ms | vs hello | of medians | latch vs it | of medians |")
        p("|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, server, s_ in [
            ("latch /auth", "latch", lat),
            ("nforwardauth /forward", "nfa", nfa),
            ("hello", "hello", base),
        ]:
            p(
                f"| {name} | {s_['rps']:.0f} | {s_['p50']:.3f} | {s_['p99']:.3f} "
                f"| {paired('7', server, 'hello'):.3f} | {s_['rps'] / base['rps']:.3f} "
                f"| {paired('7', 'latch', server):.3f} | {lat['rps'] / s_['rps']:.3f} |"
            )
        p("")

    flood = [r for r in wrk if r["scenario"] == "4" and r["server"] == "flood"]
    if flood:
        f = flood[-1]
        statuses = {k[len("status_") :]: v for k, v in f.items() if k.startswith("status_")}
        n503 = statuses.get("503", 0)
        p(
            f"Scenario 4 login flood (GET /api/token, random Basic credentials, "
            f"wrk -t1 -c{meta.get('flood_connections', '?')}, "
            f"{f['duration_us'] / 1e6:.1f} s, over the whole scenario):"
        )
        p("")
        p("| login req/s | answers by status | 503 | 503 share | p50 ms | p99 ms | max ms | socket errors |")
        p("|---:|---|---:|---:|---:|---:|---:|---:|")
        p(
            f"| {f['rps']:.1f} | {', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))} "
            f"| {n503} | {n503 / max(1, f['requests']):.1%} | {f['p50_us'] / 1000:.1f} "
            f"| {f['p99_us'] / 1000:.1f} | {f['latency_max_us'] / 1000:.1f} | {f['socket_errors']} |"
        )
        p("")

    if startup:
        ls, ld = startup["listening_ms"], startup["loaded_ms"]
        p(
            f"Scenario 5 start-up (wall time from spawning `latch serve`, {len(ls)} runs, "
            f"{startup.get('users')} users, {startup.get('revocations')} revocations, "
            f"{startup.get('sessions')} sessions):"
        )
        p("")
        p("| | median ms | runs ms |")
        p("|---|---:|---|")
        p(f"| to `listening on` | {med(ls):.1f} | {', '.join(f'{x:.1f}' for x in ls)} |")
        p(f"| to `revocations loaded` | {med(ld):.1f} | {', '.join(f'{x:.1f}' for x in ld)} |")
        if seed:
            p("")
            p(f"Seed data: {seed.get('dir')} ({seed.get('note')}, {seed.get('size')} before "
              "the start-ups).")
        p("")

    # Targets.
    checks = []

    def check(name, value, ok, target):
        checks.append((name, value, target, ok))

    by = {sc: (lat, base, ratio) for sc, lat, base, ratio in table}

    def of_medians(sc):
        lat, base, _ = by[sc]
        return lat["rps"] / base["rps"]

    # Judged by the neighbouring rounds (`paired`); the ratio of the
    # medians is shown beside each.
    for sc in ["1", "2", "6"]:
        if sc in by and by[sc][2] is not None:
            r = by[sc][2]
            check(f"#{sc} latch/hello req/s", f"{r:.3f} ({of_medians(sc):.3f})",
                  r >= 0.90, ">= 0.90")
    if "6" in by and by["6"][2] is not None:
        if "2" in by:
            r2 = by["6"][0]["rps"] / by["2"][0]["rps"]
            check("#6 req/s vs #2 (no rules)", f"{r2:.3f}", True, "reported")
    if nfa and "7" in by:
        r = paired("7", "latch", "nfa")
        check("#7 latch /auth vs nforwardauth req/s",
              f"{r:.3f} ({by['7'][0]['rps'] / nfa['rps']:.3f})", r >= 1.10, ">= 1.10")
    if "3" in by and by["3"][2] is not None:
        r = by["3"][2]
        check("#3 latch/hello req/s", f"{r:.3f} ({of_medians('3'):.3f})", r >= 0.50, ">= 0.50")
    if "4" in by:
        lat = by["4"][0]
        if s1:
            r = lat["rps"] / s1["rps"]
            check("#4 verification under flood / idle #1", f"{r:.3f}", r >= 0.50, ">= 0.50")
        check("#4 verification p99 under flood", f"{lat['p99']:.2f} ms", lat["p99"] <= 20, "<= 20 ms")
    if "5" in by:
        lat, base, r = by["5"]
        # Each against the hello run beside it, as every other target: the
        # two scenarios run minutes apart, and the machine drifts between
        # them (hello alone moves by 5 % or more); the raw ratio is shown.
        if s1 and r is not None and "1" in by and by["1"][2]:
            r1 = r / by["1"][2]
            r1m = of_medians("5") / of_medians("1")
            raw = lat["rps"] / s1["rps"]
            check("#5 latch/hello vs #1 latch/hello (small database)",
                  f"{r1:.3f} ({r1m:.3f}; req/s {raw:.3f})", r1 >= 0.95, ">= 0.95")
    if startup:
        m = med(startup["listening_ms"])
        check("#5 start-up to `listening on` (median)", f"{m:.1f} ms", m <= 500, "<= 500 ms")
    if "5" in rss:
        mib = rss["5"] / 1024
        check("#5 RSS under load", f"{mib:.1f} MiB", mib <= 128, "<= 128 MiB")
    if disk:
        mb = disk["kib"] * 1024 / 1e6
        check("#5 on disk after the restarts", f"{mb:.0f} MB", mb <= 300, "<= 300 MB")
    for sc in ["1", "2", "3"]:
        if sc in rss:
            mib = rss[sc] / 1024
            check(f"RSS after #{sc} (ln=10)", f"{mib:.1f} MiB", mib <= 64, "<= 64 MiB")

    p("Targets (a ratio is judged over neighbouring rounds; in brackets, the ratio of "
      "the medians):")
    p("")
    p("| target | measured | wanted | result |")
    p("|---|---:|---|---|")
    for name, value, target, ok in checks:
        p(f"| {name} | {value} | {target} | {'PASS' if ok else 'FAIL'} |")
    p("")
    failed = [c for c in checks if not c[3]]
    p(
        f"{len(checks) - len(failed)} of {len(checks)} targets met"
        + (": FAIL " + "; ".join(c[0] for c in failed) if failed else ": all PASS")
    )
    print("\n".join(out))
    return 3 if failed else 0


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "login":
        print(login(*args))
    elif cmd == "nfa-cookie":
        print(nfa_cookie(*args))
    elif cmd == "token":
        print(token(*args))
    elif cmd == "enrol":
        enrol(*args)
    elif cmd == "startup":
        sep = args.index("--")
        extra = {}
        for kv in args[3:sep]:
            k, _, v = kv.partition("=")
            extra[k] = parse_value(v)
        startup(args[0], int(args[1]), args[2], extra, args[sep + 1 :])
    elif cmd == "wrk":
        record_wrk(*args)
    elif cmd == "record":
        rec = {"kind": args[1]}
        for kv in args[2:]:
            k, _, v = kv.partition("=")
            rec[k] = parse_value(v)
        append(args[0], rec)
    elif cmd == "report":
        return report(args[0])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
