"""A small deterministic workload for the allocator: JSON, threads and a fork.

Prints the same lines on every run with every allocator; the integration
tests compare its output with and without libsimalloc preloaded.
"""
import hashlib
import json
import os
import random
import sys
import threading


def make_records(seed, count):
    rng = random.Random(seed)
    return [
        {
            "id": i,
            "name": "".join(rng.choice("abcdefghijklmnop") for _ in range(rng.randint(3, 20))),
            "tags": [rng.randint(0, 99) for _ in range(rng.randint(0, 8))],
            "score": rng.randint(-1000, 1000) / 7,
            "nested": {"k%d" % j: [j] * j for j in range(rng.randint(0, 5))},
        }
        for i in range(count)
    ]


def digest(obj):
    text = json.dumps(obj, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def roundtrip(records, rounds):
    for _ in range(rounds):
        records = json.loads(json.dumps(records))
    return records


def threaded(results, index):
    records = make_records(index, 2000)
    back = roundtrip(records, 5)
    assert back == records
    joined = ",".join(r["name"] for r in back)
    results[index] = (digest(back), len(joined))


def forked_sum(records):
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        total = sum(len(r["tags"]) + r["id"] for r in roundtrip(records, 3))
        os.write(write_end, str(total).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        total = int(pipe.read())
    _, status = os.waitpid(pid, 0)
    return total, os.waitstatus_to_exitcode(status)


def main():
    results = [None] * 6
    threads = [threading.Thread(target=threaded, args=(results, i)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (d, n) in enumerate(results):
        print("thread %d digest %s names %d" % (i, d, n))
    records = make_records(99, 5000)
    print("records digest", digest(records))
    total, code = forked_sum(records)
    print("forked sum", total, "exit", code)
    words = {}
    for r in records:
        words[r["name"][:3]] = words.get(r["name"][:3], 0) + 1
    for key in sorted(words)[:20]:
        print(key, words[key])
    return 0


if __name__ == "__main__":
    sys.exit(main())
