#!/usr/bin/env python3
"""Write a generated C file for the gcc workload of bench/run.

The file has many functions with loops, switches, arrays and inlinable
helpers, so that `gcc -O2 -c` on it spends about a second in cc1 building
and optimising its internal representation, which is what allocates.

usage: gen_c.py OUTPUT.c [SCALE]   (1.0 is about a second)
"""
import sys


def function(i):
    return f"""
static inline int helper_{i}(int x, int y)
{{
  return (x * {i % 13 + 3} + y) ^ (x >> {i % 5 + 1});
}}

int func_{i}(const int *a, int n, int k)
{{
  int acc = {i};
  int table[{8 + i % 8}] = {{ {", ".join(str((i * j) % 97) for j in range(8 + i % 8))} }};
  for (int j = 0; j < n; j++) {{
    switch ((a[j] + k) % 6) {{
    case 0: acc += helper_{i}(a[j], table[j % {8 + i % 8}]); break;
    case 1: acc -= a[j] * {i % 7 + 2}; break;
    case 2: acc ^= (acc << 3) + j; break;
    case 3: acc = acc * 31 + table[(acc & 0x7fffffff) % {8 + i % 8}]; break;
    case 4: if (acc > {i * 3}) acc /= 3; else acc += k; break;
    default: acc += j * j - k;
    }}
  }}
  for (int j = 0; j < {8 + i % 8}; j++)
    table[j] = helper_{i}(table[j], acc);
  return acc + table[k & {7}];
}}
"""


def main():
    if len(sys.argv) not in (2, 3):
        sys.stderr.write("usage: gen_c.py OUTPUT.c [SCALE]\n")
        sys.exit(2)
    try:
        scale = float(sys.argv[2]) if len(sys.argv) == 3 else 1.0
        if not scale > 0:
            raise ValueError
    except ValueError:
        sys.stderr.write(f"gen_c.py: bad scale '{sys.argv[2]}'\n")
        sys.exit(2)
    count = max(1, int(50 * scale))
    parts = [f"/* generated: {count} functions */\n"]
    parts += [function(i) for i in range(count)]
    parts.append("\nint all_funcs(const int *a, int n)\n{\n  int s = 0;\n")
    parts += [f"  s += func_{i}(a, n, {i});\n" for i in range(count)]
    parts.append("  return s;\n}\n")
    with open(sys.argv[1], "w") as f:
        f.write("".join(parts))


if __name__ == "__main__":
    main()
