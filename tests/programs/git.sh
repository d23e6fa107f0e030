#!/bin/sh
# git.sh DIR - a small, deterministic git session in the empty directory
# DIR: init, several commits, a branch and a merge, log --stat, gc, fsck.
# Every date and name is fixed, so the output is the same on every run.
set -eu
cd "$1"
export HOME="$PWD" GIT_CONFIG_NOSYSTEM=1 LC_ALL=C TZ=UTC
export GIT_AUTHOR_NAME="A U Thor" GIT_AUTHOR_EMAIL=author@example.com
export GIT_COMMITTER_NAME="C O Mitter" GIT_COMMITTER_EMAIL=committer@example.com
when() { export GIT_AUTHOR_DATE="@$1 +0000" GIT_COMMITTER_DATE="@$1 +0000"; }

git init -q -b main repo
cd repo
git config gc.auto 0
t=1700000000
for i in 1 2 3 4 5 6; do
  seq 1 $((i * 500)) | sed "s/\$/ line of file $i/" > "file$i.txt"
  seq $i 7 4000 > numbers.txt
  git add -A
  when $((t + i * 60))
  git commit -q -m "commit $i: file$i and numbers"
done
git checkout -q -b topic
sed -i 's/line/LINE/' file2.txt
when $((t + 1000))
git commit -q -am "topic: shout in file2"
git checkout -q main
echo extra >> file6.txt
when $((t + 1100))
git commit -q -am "main: extra line"
when $((t + 1200))
git merge -q --no-edit topic
git log --stat --format='%H %an %ad %s' --date=iso-strict
git gc -q --aggressive
git fsck --full --strict
git count-objects -v | grep -v size
git rev-parse HEAD
