#!/bin/sh
# bare / seccomp default / hybrid default / hybrid (before) default, rotated; make -j2 kernel/time/ in a fresh O= copy.
SRC=$HOME/.cache/idwrap-bench/linux-source-6.1
BASE=$HOME/.cache/idwrap-bench/linux-source-6.1-x86_64-tinyconfig
NEW=/work/wt-hybridperf/idwrap; OLD=/tmp/hp-before/idwrap
export IDWRAP_STORE=/tmp/hp-ll/bstore.kv
for round in 4 5; do
  for cfg in bare seccomp hybrid before; do
    out=/dev/shm/hp-build-$$; rm -rf $out; cp -a $BASE $out
    case $cfg in
      bare) pre="";; seccomp) pre="$NEW run --source seccomp --";; hybrid) pre="$NEW run --source hybrid --";; before) pre="$OLD run --source hybrid --";;
    esac
    s=$(date +%s%N); $pre /usr/bin/make -s -C $SRC O=$out ARCH=x86_64 -j2 kernel/time/ >/dev/null 2>/tmp/hp-ll/b-$cfg.err; rc=$?; e=$(date +%s%N)
    echo "$round $cfg $(( (e-s)/1000000 )) ms rc=$rc load=$(cut -d' ' -f1 /proc/loadavg)"
    rm -rf $out
  done
done
