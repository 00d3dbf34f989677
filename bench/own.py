"""Where a server's CPU went per request, by the crate of each sampled
function, from `perf report --no-children --sort dso,sym -g none
--percent-limit 0 -F overhead,sample,dso,sym` on stdin (self time: code
inlined into a function counts as that function's), then latch's own top
functions.

    python3 bench/own.py REQ_PER_S SECONDS SAMPLE_HZ

One sample stands for 1/SAMPLE_HZ s of one CPU; the requests in the window
are REQ_PER_S * SECONDS (wrk's rate over a run a little longer than it).
"""

import re
import sys


def crate(dso, sym):
    """The crate a sampled function of the program belongs to: for
    `<T as Trait>::f`, T's; `core`, `alloc` and `std` are one. Shared
    libraries, the vDSO and the kernel by name."""
    if dso.startswith("[kernel"):
        return "kernel"
    if dso.startswith(("lib", "[")) and dso != "[unknown]":
        return dso  # libc.so.6 (malloc, memcpy), [vdso], ...
    name = re.sub(r"^[<&*\s]*(dyn |mut |const )?", "", sym)
    head = re.split(r"::|<| as |\[|\(", name, maxsplit=1)[0]
    if head in ("core", "alloc", "std"):
        return "std"
    return head or "?"


def main():
    rps, seconds, hz = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    requests = rps * seconds
    by_crate, latch_fns, total = {}, {}, 0
    for line in sys.stdin:
        m = re.match(r"\s*[\d.]+%\s+(\d+)\s+(\S+)\s+\[.\]\s+(.*?)\s*$", line)
        if not m or line.startswith("#"):
            continue
        n, dso, sym = int(m.group(1)), m.group(2), m.group(3)
        total += n
        c = crate(dso, sym)
        by_crate[c] = by_crate.get(c, 0) + n
        if c == "latch":
            latch_fns[sym] = latch_fns.get(sym, 0) + n
    if not total or not requests:
        sys.exit("own.py: no samples or no requests")

    def us(n):
        return n / hz / requests * 1e6

    print(f"CPU per request: {us(total):.2f} us ({total} samples, {requests:.0f} requests)")
    print("by crate (self):")
    for c, n in sorted(by_crate.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {c:24} {us(n):6.3f} us  {100 * n / total:5.1f}%")
    own = by_crate.get("latch", 0)
    print(f"latch's own code: {us(own):.3f} us per request; its top functions:")
    for f, n in sorted(latch_fns.items(), key=lambda kv: -kv[1])[:15]:
        print(f"  {us(n):6.3f} us  {f[:110]}")


main()
