#!/bin/sh
# xz.sh DIR - compress and decompress a generated file with xz in DIR and
# print checksums and the archive listing (names relative, so the output
# does not depend on DIR).
set -eu
cd "$1"
seq 1 100000 | sed 's/\(.*\)\(.\)$/\2 \1 some text to compress &/' > data.txt
xz -6 -T2 -k -c data.txt > data.txt.xz
xz -9 -k -c data.txt > data9.txt.xz
xz -t data.txt.xz data9.txt.xz
xz -dc data.txt.xz | sha256sum
xz -dc data9.txt.xz | sha256sum
sha256sum < data.txt
sha256sum < data9.txt.xz
xz -l --robot data.txt.xz data9.txt.xz | cut -f1-7
