#!/usr/bin/env python3
"""Dict- and JSON-heavy script, the python3 workload of bench/run.

Builds many small records (dicts of strings, ints, lists), serialises them
to JSON and back, indexes and regroups them, and prints one checksum line.
Run with PYTHONMALLOC=malloc so every object goes through the malloc under
test rather than Python's own small-object pool.

usage: dictjson.py [SCALE]   (1.0 is about a second)
"""
import hashlib
import json
import sys

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta",
         "theta", "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron"]


def make_record(i):
    w = WORDS[i % len(WORDS)]
    return {
        "id": i,
        "name": f"{w}-{i}",
        "tags": [WORDS[(i * k) % len(WORDS)] for k in range(1, 1 + i % 6)],
        "score": (i * 2654435761) % 1000003 / 7.0,
        "attrs": {f"k{j}": j * i for j in range(i % 8)},
    }


def one_batch(seed, count):
    records = [make_record(seed * count + i) for i in range(count)]
    text = json.dumps(records, sort_keys=True)
    back = json.loads(text)
    by_tag = {}
    for r in back:
        for t in r["tags"]:
            by_tag.setdefault(t, []).append(r["name"])
    summary = {t: len(v) for t, v in sorted(by_tag.items())}
    merged = {r["name"]: {**r["attrs"], "score": r["score"]} for r in back}
    return json.dumps([summary, len(merged), len(text)], sort_keys=True)


def main():
    try:
        scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
        if not scale > 0:
            raise ValueError
    except ValueError:
        sys.stderr.write(f"dictjson: bad scale '{sys.argv[1]}'\n")
        sys.exit(2)
    digest = hashlib.sha256()
    for seed in range(max(1, int(20 * scale))):
        digest.update(one_batch(seed, 2000).encode())
    print("dictjson checksum", digest.hexdigest()[:16])


if __name__ == "__main__":
    main()
