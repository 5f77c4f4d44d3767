#!/bin/bash
# Broker CPU and consume rate of a 1M-message drain with a TAG "*" and a SQL92
# subscription (docs/perf.md, SQL92 filters).
#
#   bench/sql_drain.sh NEW_APOGEE MAIN_APOGEE [RUNS]
#
# Two brokers run at once (NEW with enablePropertyFilter=true on 26911/26876,
# MAIN, e.g. a build of main, on 27911/27876, fresh temp dirs), each filled
# with 1M messages; the consumes then alternate so load drift hits all alike.
# Each line: msgs/s, messages received, the broker CPU (utime+stime) it took.
NEW=$1; MAIN=$2; RUNS=${3:-5}
DN=$(mktemp -d); DM=$(mktemp -d)
$NEW standalone --grpcServerPort=0 --httpListenPort=0 --storePathRootDir=$DN --listenPort=26911 --namesrvListenPort=26876 --bindAddress=127.0.0.1 --enablePropertyFilter=true > $DN/log 2>&1 & PN=$!
$MAIN standalone --grpcServerPort=0 --httpListenPort=0 --storePathRootDir=$DM --listenPort=27911 --namesrvListenPort=27876 --bindAddress=127.0.0.1 > $DM/log 2>&1 & PM=$!
sleep 3
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
cons() { # pid ns args...
  local pid=$1 ns=$2; shift 2
  local c0=$(cpu $pid)
  local out=$(nice -n 5 $NEW bench consume --namesrvAddr=$ns --topic=TS --threads=4 --pullBatch=256 --messages=1000000 --json "$@" 2>/dev/null | tail -1 | python3 -c 'import json,sys; j=json.loads(sys.stdin.read()); print(int(j["tps"]), j["received"])')
  local c1=$(cpu $pid)
  echo "$out broker_cpu_ms=$(( (c1-c0)*1000/$(getconf CLK_TCK) ))"
}
for ns in 127.0.0.1:26876 127.0.0.1:27876; do
  nice -n 5 $NEW bench produce --namesrvAddr=$ns --topic=TS --threads=2 --batch=256 --messages=1000000 --json 2>/dev/null | tail -1 | cut -c1-60
done
for r in $(seq $RUNS); do
  echo "main TAG *: $(cons $PM 127.0.0.1:27876)"
  echo "new  TAG *: $(cons $PN 127.0.0.1:26876)"
  echo "new  SQL92: $(cons $PN 127.0.0.1:26876 --sql="bench > 0 AND bench <> 'x'")"
done
kill $PN $PM; wait $PN $PM
rm -rf $DN $DM
