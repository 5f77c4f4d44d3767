#!/bin/bash
# Cost of the plain ACL on 64-thread sync sends of 128 B (docs/perf.md, ACL).
#
#   bench/acl_overhead.sh APOGEE [RUNS] [SECS]
#
# Two `apogee standalone` run at once, fresh temp dirs: OFF (aclEnable=false, 28911/28876)
# and ON (aclEnable=true with one account, 29911/29876). The runs alternate OFF ON ON OFF
# OFF ON ... so the VM's load drift and the order hit both alike; ON runs sign every request (the C client with
# accessKey/secretKey) and the broker checks each. Each line: msgs/s, and the CPU per
# message of the broker and of the bench client (utime+stime over the run), which the
# VM's other tenants disturb less than the rate.
BIN=$1; RUNS=${2:-5}; SECS=${3:-5}
DF=$(mktemp -d); DN=$(mktemp -d); mkdir -p $DN/conf
cat > $DN/conf/plain_acl.yml <<'YML'
accounts:
  - accessKey: benchUser1
    secretKey: benchSecret1
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms: [T1=PUB|SUB]
YML
$BIN standalone --grpcServerPort=0 --httpListenPort=0 --storePathRootDir=$DF --listenPort=28911 --namesrvListenPort=28876 --bindAddress=127.0.0.1 > $DF/log 2>&1 & PF=$!
$BIN standalone --grpcServerPort=0 --httpListenPort=0 --storePathRootDir=$DN --listenPort=29911 --namesrvListenPort=29876 --bindAddress=127.0.0.1 --aclEnable=true > $DN/log 2>&1 & PN=$!
sleep 3
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
run() { # label pid ns args...
  local label=$1 pid=$2 ns=$3; shift 3
  local c0=$(cpu $pid) t=$(mktemp)
  local j=$(/usr/bin/time -f "%U %S" -o $t $BIN bench produce --namesrvAddr=$ns --topic=T1 --threads=64 --size=128 --duration=$SECS --json "$@" 2>/dev/null | tail -1)
  local c1=$(cpu $pid)
  python3 - "$label" "$j" "$(cat $t)" $((c1-c0)) $(getconf CLK_TCK) <<'PY'
import json, sys
label, j, tcli, tick, hz = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3].split(), int(sys.argv[4]), int(sys.argv[5])
n = max(1, j["sent"])
cli = (float(tcli[0]) + float(tcli[1])) * 1e6 / n
brk = tick / hz * 1e6 / n
print(f"{label} {int(j['tps'])} msgs/s, CPU/msg: broker {brk:.2f} us, client {cli:.2f} us, total {brk + cli:.2f} us")
PY
  rm -f $t
}
on() { run "ACL on: " $PN 127.0.0.1:29876 --accessKey=benchUser1 --secretKey=benchSecret1; }
off() { run "ACL off:" $PF 127.0.0.1:28876; }
for r in $(seq $RUNS); do
  if [ $((r % 2)) = 1 ]; then off; on; else on; off; fi # either may go first
done
grep -c "refused" $DN/log | sed 's/^/ACL-on broker refusal lines: /'
kill $PF $PN; wait $PF $PN 2>/dev/null
rm -rf $DF $DN
