"""A stdlib-heavy, deterministic Python workload for the allocator.

JSON round trips, regular expressions, collections, decimal arithmetic, a
few threads and a two-process multiprocessing pool.  It prints the same
lines on every run with any allocator; the test compares a plain run with
one under libsimalloc.
"""
import collections
import decimal
import hashlib
import json
import multiprocessing
import re
import threading


def lcg(seed):
    while True:
        seed = (seed * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        yield seed >> 33


def words(seed, count):
    gen = lcg(seed)
    letters = "etaoinshrdlucmfwypvbgkqjxz"
    out = []
    for _ in range(count):
        n = 2 + next(gen) % 9
        out.append("".join(letters[next(gen) % (1 + next(gen) % 26)] for _ in range(n)))
    return out


def records(seed, count):
    gen = lcg(seed)
    return [
        {
            "id": i,
            "name": " ".join(words(seed + i, 1 + next(gen) % 4)),
            "tags": sorted({next(gen) % 50 for _ in range(next(gen) % 7)}),
            "price": str(decimal.Decimal(next(gen) % 100000) / 100),
            "nested": {"k%d" % j: list(range(j)) for j in range(next(gen) % 5)},
        }
        for i in range(count)
    ]


def digest(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def json_part():
    recs = records(1, 3000)
    for _ in range(4):
        recs = json.loads(json.dumps(recs))
    print("json", len(recs), digest(recs))


def regex_part():
    text = " ".join(words(7, 40000))
    counts = collections.Counter(re.findall(r"\b[a-z]*e[a-z]*\b", text))
    swapped = re.sub(r"(\w)(\w*)(\w)", lambda m: m.group(3) + m.group(2) + m.group(1), text)
    print("regex", len(counts), counts.most_common(3), hashlib.md5(swapped.encode()).hexdigest())


def decimal_part():
    decimal.getcontext().prec = 60
    total = decimal.Decimal(0)
    for i in range(1, 4000):
        total += decimal.Decimal(1) / decimal.Decimal(i)
    print("decimal", total)


def collections_part():
    dq = collections.deque(maxlen=1000)
    od = collections.OrderedDict()
    dd = collections.defaultdict(list)
    for i, w in enumerate(words(3, 50000)):
        dq.append(w)
        od[w] = i
        od.move_to_end(w)
        dd[len(w)].append(w)
    print("collections", len(dq), len(od), sorted((k, len(v)) for k, v in dd.items()))


def thread_work(index, results):
    recs = records(100 + index, 1500)
    back = json.loads(json.dumps(recs))
    assert back == recs
    results[index] = digest(back)


def threads_part():
    results = [None] * 4
    threads = [threading.Thread(target=thread_work, args=(i, results)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("threads", results)


def pool_task(n):
    recs = records(1000 + n, 800)
    return n, digest(recs), sum(len(r["name"]) for r in recs)


def pool_part():
    with multiprocessing.Pool(2) as pool:
        print("pool", pool.map(pool_task, range(8)))


if __name__ == "__main__":
    json_part()
    regex_part()
    decimal_part()
    collections_part()
    threads_part()
    pool_part()
