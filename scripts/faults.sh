#!/usr/bin/env bash
# Fault-injection suite: `apogee standalone` under load from the C client
# (build/tests/faults/faultload, which logs every acknowledged send with its
# queue offset and body crc32), a fault, a restart, and a read-back of every
# queue that prints
#     acked=N lost=L corrupt=C moved=M stored=S dup=D
# (lost: acknowledged but not read back; corrupt: read with another body;
# moved: intact but not at the acknowledged queue offset). Any L, C or M fails.
#
# Usage: scripts/faults.sh [--long] [--only=name,name] [--kill-cycles=N]
#                          [--power-cycles=N] [--per-cycle=N] [--build=DIR]
# Scenarios (short mode, the default, is what scripts/test.sh runs, ~1 min):
#   kill9      kill -9 of the broker under SYNC_FLUSH load, restart, verify;
#              3 cycles (long: 20) of at least 5,000 (long: 50,000) acks each
#   powercut   broker data on ext4 on a loop device; kill -9, then at once copy
#              the backing image (no sync: only what reached the device is in
#              the copy), mount the copy on a second loop device, start a broker
#              on it, verify. SYNC_FLUSH: 2 cycles (long: 20), 0 lost; then
#              ASYNC_FLUSH as a negative control, which must lose messages
#   eio        an LD_PRELOAD shim (tests/faults/faultshim.c) fails one msync,
#              fdatasync, fsync or pwrite of the broker with EIO under load:
#              no send started after the first injected error is acknowledged
#              (msync, the commit-log flush) and nothing acknowledged is lost
#   enospc     default settings on a 128 MiB ext4 loop file system: load until
#              writes are refused, kill -9, restart on the full disk, verify,
#              free space, send again, verify every acknowledged message
#   conns      10,000 idle connections held open during the load
#   slowframes 1,000 connections with partial frames (500 trickling one byte a
#              second, 500 stalled) during the load; anonymous RSS <= 64 MB
#              (the memory bounds themselves: tests/integration/slow_peers)
#   overload   every put stalled 300 ms in the store during the load: the
#              broker answers SYSTEM_BUSY, the client backs off, 0 lost
# powercut and enospc need root and a free loop device; without them they are
# reported as skipped ("ok N - name # SKIP reason", listed in tests/skips.txt).
# Output is TAP-like with "# pass N" / "# fail N" at the end, which
# scripts/test.sh counts as it counts a node test file. Everything made is
# removed on exit, failure or interrupt: brokers and loaders killed, file
# systems unmounted, loop devices detached, the temp dir deleted.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

long=0
only=""
kill_cycles=""
power_cycles=""
per_cycle=""
build=build
for a in "$@"; do
    case $a in
    --long) long=1 ;;
    --only=*) only=${a#*=} ;;
    --kill-cycles=*) kill_cycles=${a#*=} ;;
    --power-cycles=*) power_cycles=${a#*=} ;;
    --per-cycle=*) per_cycle=${a#*=} ;;
    --build=*) build=${a#*=} ;;
    *)
        echo "usage: $0 [--long] [--only=a,b] [--kill-cycles=N] [--power-cycles=N] [--per-cycle=N] [--build=DIR]" >&2
        exit 2
        ;;
    esac
done
if [ "$long" = 1 ]; then
    : "${kill_cycles:=20}" "${power_cycles:=20}" "${per_cycle:=50000}"
else
    : "${kill_cycles:=3}" "${power_cycles:=2}" "${per_cycle:=5000}"
fi

APOGEE_BIN=${APOGEE_BIN:-$root/$build/apogee}
faultload=$root/$build/tests/faults/faultload
shim=$root/$build/tests/faults/libapg_faultshim.so
for f in "$APOGEE_BIN" "$faultload" "$shim"; do
    [ -e "$f" ] || {
        echo "missing $f: build first (scripts/build.sh $build)" >&2
        exit 2
    }
done

work=$(mktemp -d /tmp/apg-faults.XXXXXX)
mounts=() # mount points, unmounted on exit (last first)
loops=()  # loop devices, detached on exit
cleanup() {
    # Only this shell's own background jobs still running: a pid that exited
    # long ago may belong to someone else by now.
    local p m l i
    for p in $(jobs -p); do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        m=${mounts[i]}
        mountpoint -q "$m" && { umount "$m" 2>/dev/null || umount -l "$m"; }
    done
    for l in "${loops[@]}"; do losetup -d "$l" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

n=0
npass=0
nfail=0
result() { # status name [detail]
    n=$((n + 1))
    case $1 in
    pass)
        npass=$((npass + 1))
        echo "ok $n - $2"
        ;;
    skip) echo "ok $n - $2 # SKIP $3" ;;
    *)
        nfail=$((nfail + 1))
        echo "not ok $n - $2${3:+ ($3)}"
        ;;
    esac
}
selected() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
say() { echo "# $*"; }

free_port() { # a free port whose successor (the HA port) is free too
    python3 - <<'EOF'
import socket
while True:
    a = socket.socket(); a.bind(("127.0.0.1", 0)); p = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", p + 1)); print(p); break
    except OSError:
        pass
    finally:
        a.close(); b.close()
EOF
}

# start_broker DIR FLUSH [args...]: starts `apogee standalone` on DIR with new
# ports; sets BROKER (pid), NS (namesrv address) and BLOG (its log file).
# Extra environment for the broker: the BROKER_ENV array.
BROKER_ENV=()
start_broker() {
    local dir=$1 flush=$2
    shift 2
    local bport nsport
    bport=$(free_port)
    nsport=$(free_port)
    BLOG=$work/broker.$((++nbrokers)).log
    : >"$BLOG"
    env "${BROKER_ENV[@]}" "$APOGEE_BIN" standalone --storePathRootDir="$dir" --bindAddress=127.0.0.1 \
        --listenPort="$bport" --namesrvListenPort="$nsport" --grpcServerPort=0 --httpListenPort=0 --flushDiskType="$flush" "$@" >"$BLOG" 2>&1 &
    BROKER=$!
    NS=127.0.0.1:$nsport
    BPORT=$bport
    local i
    for ((i = 0; i < 300; i++)); do
        grep -q 'ready in' "$BLOG" && return 0
        kill -0 "$BROKER" 2>/dev/null || break
        sleep 0.1
    done
    say "broker did not start: $(tail -n 5 "$BLOG")"
    return 1
}
nbrokers=0

stop_broker() { # SIGTERM, wait; 0 when it exited 0
    kill -TERM "$BROKER" 2>/dev/null
    wait "$BROKER"
}

kill_broker() {
    {
        kill -9 "$BROKER"
        wait "$BROKER"
    } 2>/dev/null
    return 0
}

# start_load RUN LOG [faultload args...]: a loader in the background (LOADER).
start_load() {
    local run=$1 log=$2
    shift 2
    "$faultload" produce --ns="$NS" --topic=FaultTopic --run="$run" --log="$log" --duration=600 "$@" \
        >"$log.out" 2>"$log.err" &
    LOADER=$!
}

stop_load() { # SIGTERM: the loader ends its sends, writes its log and exits
    kill -TERM "$LOADER" 2>/dev/null
    wait "$LOADER" 2>/dev/null
    sed 's/^/# /' "$1.out"
}

# wait_acks LOG N [secs]: until the loader reported N acks (its stderr counts
# by 10,000; for smaller N the log file itself) or secs pass.
wait_acks() {
    local log=$1 want=$2 secs=${3:-120} i got
    for ((i = 0; i < secs * 20; i++)); do
        got=$(lines "$log")
        [ "$got" -ge "$want" ] && return 0
        kill -0 "$LOADER" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }

# enough LOG WHAT: the cycle's loader logged at least per_cycle acks.
enough() {
    local got
    got=$(lines "$1")
    [ "$got" -ge "$per_cycle" ] && return 0
    say "$2: only $got acknowledged, fewer than $per_cycle"
    return 1
}

# verify OUTVAR [faultload verify args...]: runs the verifier against NS,
# echoes its line, leaves the line in OUTVAR; status of the verifier.
verify() {
    local __v=$1 __o __rc
    shift
    __o=$("$faultload" verify --ns="$NS" --topic=FaultTopic "$@" 2>"$work/verify.err")
    __rc=$?
    [ -n "$__o" ] || __o="verifier failed: $(tail -n 3 "$work/verify.err")"
    printf -v "$__v" '%s' "$__o"
    return $__rc
}

field() { sed -nE "s/.*\b$1=([0-9]+).*/\1/p" <<<"$2"; }

have_loop() {
    [ "$(id -u)" = 0 ] || {
        echo "needs root (mount, losetup)"
        return 1
    }
    command -v mkfs.ext4 >/dev/null || {
        echo "no mkfs.ext4"
        return 1
    }
    losetup -f >/dev/null 2>&1 || {
        echo "no free loop device"
        return 1
    }
}

# mkloopfs IMG SIZE MNT: a fresh ext4 in IMG mounted on MNT; sets LOOPDEV.
mkloopfs() {
    truncate -s "$2" "$1" && mkfs.ext4 -q -F "$1" || return 1
    attach_and_mount "$1" "$3"
}
attach_and_mount() { # IMG MNT
    LOOPDEV=$(losetup -f --show "$1") || return 1
    loops+=("$LOOPDEV")
    mkdir -p "$2"
    mount "$LOOPDEV" "$2" || return 1
    mounts+=("$2")
}
unmount_detach() { # MNT DEV
    umount "$1" && losetup -d "$2"
}

# ---- kill -9 cycles ---------------------------------------------------------
scenario_kill9() {
    local dir=$work/kill9 logs=() c out ok=1
    mkdir -p "$dir"
    for ((c = 0; c < kill_cycles; c++)); do
        start_broker "$dir/data" SYNC_FLUSH || {
            ok=0
            break
        }
        local log=$dir/acks.$c
        logs+=("--log=$log")
        start_load "k$c" "$log" --threads=4 --inflight=512
        wait_acks "$log" "$per_cycle" || say "cycle $c: fewer than $per_cycle acks before the kill"
        sleep "0.$((RANDOM % 10))"
        kill_broker
        stop_load "$log"
        enough "$log" "kill9 cycle $c" || ok=0
        local chk
        chk=$("$APOGEE_BIN" check-store --storePathRootDir="$dir/data" 2>&1)
        local crc=$?
        if [ $crc -gt 1 ] || grep -q '^ERROR' <<<"$chk"; then
            say "check-store after the kill in cycle $c: exit $crc"
            grep '^ERROR' <<<"$chk" | head -n 5 | sed 's/^/# /'
            ok=0
        fi
        start_broker "$dir/data" SYNC_FLUSH || {
            ok=0
            break
        }
        verify out "${logs[@]}" || ok=0
        say "kill9 cycle $c: $out"
        stop_broker || {
            say "broker exit $? after SIGTERM: $(tail -n 3 "$BLOG")"
            ok=0
        }
        [ $ok = 1 ] || break
    done
    say "kill9: $kill_cycles cycles under SYNC_FLUSH, totals: ${out:-none}"
    [ $ok = 1 ] && result pass "kill -9 cycles under SYNC_FLUSH: 0 lost" || result fail "kill -9 cycles under SYNC_FLUSH" "$out"
}

# ---- power cut on a loop device ---------------------------------------------
# One run of cycles with the given flush mode; prints the last verify line
# to PC_OUT and the per-cycle lost counts to PC_LOST (space separated).
powercut_run() {
    local flush=$1 cycles=$2 tag=$3
    local img=$work/pc-$tag.img mnt=$work/pc-$tag.mnt copy=$work/pc-$tag.copy.img cmnt=$work/pc-$tag.copy.mnt
    local logs=() c out dev
    PC_OUT=""
    PC_LOST=""
    PC_SHORT=0
    mkloopfs "$img" 3G "$mnt" || return 2
    dev=$LOOPDEV
    # 64 MiB segments: a 1 GiB image per cycle would only make the copies slow.
    local seg=--mappedFileSizeCommitLog=67108864
    for ((c = 0; c < cycles; c++)); do
        start_broker "$mnt/data" "$flush" "$seg" || return 2
        if [ "$flush" = ASYNC_FLUSH ] && [ $c = 0 ]; then
            # The control is about message data: let the topic's table and a
            # first few messages reach the device before the load.
            start_load "w$tag" "$work/pc-$tag.acks.w" --threads=1 --messages=100
            wait "$LOADER" # it ends by itself after 100 acks
            sed 's/^/# /' "$work/pc-$tag.acks.w.out"
            logs+=("--log=$work/pc-$tag.acks.w")
            sleep 2
        fi
        local log=$work/pc-$tag.acks.$c
        logs+=("--log=$log")
        start_load "p$tag$c" "$log" --threads=4 --inflight=512
        wait_acks "$log" "$per_cycle" || say "cycle $c: fewer than $per_cycle acks before the cut"
        sleep "0.$((RANDOM % 5))"
        # The power cut: what the device holds now. No sync: dirty pages of
        # the killed broker are still in the page cache, above the device.
        {
            kill -9 "$BROKER"
            cp --sparse=always "$img" "$copy"
            wait "$BROKER"
        } 2>/dev/null
        stop_load "$log"
        enough "$log" "powercut $flush cycle $c" || PC_SHORT=1
        attach_and_mount "$copy" "$cmnt" || return 2
        local cdev=$LOOPDEV
        start_broker "$cmnt/data" "$flush" "$seg" || return 2
        verify out "${logs[@]}"
        say "powercut $flush cycle $c: $out"
        PC_LOST="$PC_LOST $(field lost "$out")"
        PC_OUT=$out
        stop_broker || say "broker on the copy: exit $? after SIGTERM"
        unmount_detach "$cmnt" "$cdev" || return 2
        rm -f "$copy"
        # The run goes on from the killed broker's own file system (a kill -9,
        # not a cut): its page cache still holds everything.
        [ "$flush" = ASYNC_FLUSH ] && break
        [[ "$out" == *"lost=0 corrupt=0 moved=0"* ]] || break
    done
    unmount_detach "$mnt" "$dev"
    rm -f "$img"
    return 0
}

scenario_powercut() {
    local why
    if ! why=$(have_loop); then
        result skip "power cut (loop ext4)" "$why"
        return
    fi
    local rc
    powercut_run SYNC_FLUSH "$power_cycles" sync
    rc=$?
    if [ $rc = 0 ] && [ "$PC_SHORT" = 0 ] && [[ "$PC_OUT" == *"lost=0 corrupt=0 moved=0"* ]] &&
        [ -z "$(tr -d ' 0' <<<"$PC_LOST")" ]; then
        result pass "power cut under SYNC_FLUSH: 0 lost over $power_cycles cycles"
    else
        result fail "power cut under SYNC_FLUSH" "rc=$rc $PC_OUT"
    fi
    # Negative control: under ASYNC_FLUSH acknowledged messages written in the
    # last flush interval are not on the device yet. If the copy still has
    # them all, the simulation keeps more than the device did.
    local tries
    for ((tries = 0; tries < 3; tries++)); do
        powercut_run ASYNC_FLUSH 1 async$tries
        rc=$?
        [ $rc = 0 ] && [ "$(field lost "$PC_OUT")" -gt 0 ] 2>/dev/null && break
    done
    if [ $rc = 0 ] && [ "$(field lost "$PC_OUT")" -gt 0 ] 2>/dev/null; then
        say "negative control: ASYNC_FLUSH lost $(field lost "$PC_OUT") acknowledged messages, as it may"
        result pass "power cut negative control: ASYNC_FLUSH shows loss"
    else
        result fail "power cut negative control: ASYNC_FLUSH shows no loss, the simulation keeps more than the device" "rc=$rc $PC_OUT"
    fi
}

# ---- EIO from the file system -------------------------------------------------
# eio_one CALL AT [PATH]: the AT-th CALL (on files whose path contains PATH)
# fails with EIO; every send started after it must go unacknowledged (when
# strict) and every acknowledged message survive a restart without the shim.
eio_one() {
    local call=$1 at=$2 pathf=${3:-} strict=$4
    local dir=$work/eio-$call flog=$work/eio-$call.faults log=$work/eio-$call.acks out
    mkdir -p "$dir"
    BROKER_ENV=(LD_PRELOAD="$shim" APG_FAULT_CALL="$call" APG_FAULT_AT="$at" APG_FAULT_LOG="$flog")
    [ -n "$pathf" ] && BROKER_ENV+=(APG_FAULT_PATH="$pathf")
    start_broker "$dir/data" SYNC_FLUSH
    local st=$?
    BROKER_ENV=()
    [ $st = 0 ] || return 1
    start_load "e$call" "$log" --threads=4 --inflight=256
    local i
    for ((i = 0; i < 100; i++)); do
        [ -s "$flog" ] && break
        sleep 0.1
    done
    sleep 2 # sends keep coming after the fault
    stop_load "$log"
    if [ ! -s "$flog" ]; then
        say "eio $call: no $call call number $at was made"
        kill_broker
        return 1
    fi
    grep -m 3 -E 'ERROR|WARN' "$BLOG" | cut -c1-240 | sed 's/^/# broker: /'
    cp "$BLOG" "${FAULTS_KEEP_LOGS:-/dev/null}" 2>/dev/null
    kill_broker
    start_broker "$dir/data" SYNC_FLUSH || return 1
    local strict_arg=()
    [ "$strict" = 1 ] && strict_arg=(--expect-no-ack-after-fault)
    verify out --log="$log" --fault-log="$flog" "${strict_arg[@]}"
    local rc=$?
    say "eio $call #$at${pathf:+ on *$pathf*}: $out"
    stop_broker || say "broker exit $? after SIGTERM"
    return $rc
}

scenario_eio() {
    # msync of the commit log is the flush an acknowledgement waits for: after
    # it fails, nothing is acknowledged again until a restart. The others
    # (fdatasync: checkpoint, table journal, zero-fill; fsync: table files and
    # directories; pwrite: the commit-log append) must lose nothing.
    if eio_one msync 50 "" 1; then result pass "EIO on msync: 0 acks after the fault, 0 lost"; else result fail "EIO on msync"; fi
    if eio_one fdatasync 1 commitlog 0; then result pass "EIO on fdatasync: 0 lost"; else result fail "EIO on fdatasync"; fi
    if eio_one fsync 2 "" 0; then result pass "EIO on fsync: 0 lost"; else result fail "EIO on fsync"; fi
    if eio_one pwrite 500 commitlog 0; then result pass "EIO on pwrite (commit log): 0 lost"; else result fail "EIO on pwrite"; fi
}

# ---- ENOSPC on a small loop file system --------------------------------------
scenario_enospc() {
    local why
    if ! why=$(have_loop); then
        result skip "ENOSPC (loop ext4)" "$why"
        return
    fi
    local img=$work/nospc.img mnt=$work/nospc.mnt dev out1 out2 log1=$work/nospc.acks1 log2=$work/nospc.acks2 ok=1
    mkloopfs "$img" 128M "$mnt" || {
        result fail "ENOSPC (loop ext4)" "cannot make the file system"
        return
    }
    dev=$LOOPDEV
    dd if=/dev/zero of="$mnt/ballast" bs=1M count=24 status=none
    start_broker "$mnt/data" ASYNC_FLUSH || ok=0
    start_load n1 "$log1" --threads=4 --inflight=256 --size=1024
    local i
    for ((i = 0; i < 300; i++)); do
        grep -q 'first failure' "$log1.err" 2>/dev/null && break
        kill -0 "$LOADER" 2>/dev/null || break
        sleep 0.1
    done
    sleep 1
    kill_broker
    stop_load "$log1"
    grep -m 1 'first failure' "$log1.err" | sed 's/^/# /'
    # Fill what is left, to the last block, and start on the full disk.
    dd if=/dev/zero of="$mnt/filler" bs=1M status=none 2>/dev/null
    dd if=/dev/zero of="$mnt/filler2" bs=4k status=none 2>/dev/null
    say "free after filling: $(df --output=avail -B1 "$mnt" | tail -n 1) bytes"
    start_broker "$mnt/data" ASYNC_FLUSH || ok=0
    verify out1 --log="$log1" || ok=0
    say "enospc: on the full disk after kill -9: $out1"
    rm -f "$mnt/ballast" "$mnt/filler" "$mnt/filler2"
    start_load n2 "$log2" --threads=2 --messages=2000
    wait_acks "$log2" 2000 20
    stop_load "$log2"
    verify out2 --log="$log1" --log="$log2" || ok=0
    say "enospc: after space returned: $out2"
    stop_broker || ok=0
    unmount_detach "$mnt" "$dev"
    local acked2
    acked2=$(lines "$log2")
    [ "$acked2" -gt 0 ] || {
        say "no send was acknowledged after space returned"
        ok=0
    }
    [ "$(field acked "$out1")" -gt 0 ] 2>/dev/null || ok=0
    [ $ok = 1 ] && result pass "ENOSPC on a 128 MiB ext4: every acked message readable, writes resume" ||
        result fail "ENOSPC (loop ext4)" "$out1 / $out2"
}

# ---- many connections, slow and partial frames -------------------------------
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
rss_kb() { awk "/^$2:/ {print \$2}" "/proc/$1/status"; }

# conns_run NAME MODE COUNT RSS_BOUND_KB: COUNT connections (tests/faults/conns.mjs
# MODE) held open during a load; verify; the broker's RssAnon must stay under the
# bound (0: report only).
conns_run() {
    local name=$1 mode=$2 count=$3 bound=$4 dir=$work/$1 log=$work/$1.acks out ok=1
    mkdir -p "$dir"
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    start_broker "$dir/data" SYNC_FLUSH || return 1
    local base
    base=$(rss_kb "$BROKER" RssAnon)
    : >"$work/$name.conns"
    node "$root/tests/faults/conns.mjs" "$BPORT" "$mode" "$count" >"$work/$name.conns" 2>&1 &
    local cpid=$!
    local i
    for ((i = 0; i < 600; i++)); do
        grep -q '^opened' "$work/$name.conns" && break
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.1
    done
    say "$(head -n 1 "$work/$name.conns")"
    start_load "$name" "$log" --threads=4 --inflight=256
    wait_acks "$log" "$per_cycle" 60 || ok=0
    stop_load "$log"
    local rss anon
    rss=$(rss_kb "$BROKER" VmRSS)
    anon=$(rss_kb "$BROKER" RssAnon)
    kill -TERM "$cpid" 2>/dev/null
    wait "$cpid"
    say "$(tail -n 1 "$work/$name.conns")"
    verify out --log="$log" || ok=0
    say "$name: $out; broker VmRSS $(mb "$rss") MB, RssAnon $(mb "$anon") MB (at start: $(mb "$base") MB) with $count $mode connections"
    if [ "$bound" -gt 0 ] && [ "$anon" -gt "$bound" ]; then
        say "RssAnon $anon kB above $bound kB"
        ok=0
    fi
    kill -0 "$BROKER" 2>/dev/null || ok=0
    stop_broker || {
        say "broker exit $? after SIGTERM: $(tail -n 3 "$BLOG")"
        ok=0
    }
    [ $ok = 1 ]
}

scenario_conns() {
    if conns_run conns idle 10000 0; then
        result pass "10,000 connections held during a SYNC_FLUSH load: 0 lost"
    else result fail "10,000 connections"; fi
}

scenario_slowframes() {
    if conns_run slowframes slow 1000 $((64 * 1024)); then
        result pass "1,000 slow or partial-frame connections during a load: 0 lost, RssAnon <= 64 MB"
    else result fail "slow and partial frames"; fi
}

# ---- overload -------------------------------------------------------------------
# Every put stalls inside the store's append lock (the store fault hook
# APOGEE_STORE_FAULT_PUT_DELAY_MS), so the broker cannot keep up with the
# loader's window: it must refuse with SYSTEM_BUSY rather than let sends time
# out, the client backs off and resends, and every acknowledged message is there.
scenario_overload() {
    local dir=$work/overload log=$work/overload.acks out ok=1 want=1000
    mkdir -p "$dir"
    BROKER_ENV=(APOGEE_STORE_FAULTS=1 APOGEE_STORE_FAULT_PUT_DELAY_MS=300)
    start_broker "$dir/data" ASYNC_FLUSH || ok=0
    BROKER_ENV=()
    if [ $ok = 1 ]; then
        start_load overload "$log" --threads=4 --inflight=2048
        sleep $([ "$long" = 1 ] && echo 30 || echo 6)
        stop_load "$log"
        [ "$(lines "$log")" -ge "$want" ] || {
            say "overload: only $(lines "$log") acknowledged, fewer than $want"
            ok=0
        }
        grep -q 'SYSTEM_BUSY (2)' "$BLOG" || {
            say "overload: the broker never answered SYSTEM_BUSY"
            ok=0
        }
        verify out --log="$log" || ok=0
        say "overload: $out; $(grep -c 'SYSTEM_BUSY (2)' "$BLOG") SYSTEM_BUSY log line(s) (rate-limited)"
        stop_broker || ok=0
    fi
    if [ $ok = 1 ]; then
        result pass "overload (every put stalled 300 ms): SYSTEM_BUSY answered, 0 lost"
    else result fail "overload"; fi
}

echo "# scripts/faults.sh: $([ $long = 1 ] && echo long || echo short) mode, $(git rev-parse --short HEAD 2>/dev/null), $(date -u '+%F %T UTC')"
t0=$SECONDS
for s in kill9 powercut eio enospc conns slowframes overload; do
    selected "$s" || continue
    ts=$SECONDS
    "scenario_$s"
    say "$s took $((SECONDS - ts)) s"
done
echo "# pass $npass"
echo "# fail $nfail"
say "total $((SECONDS - t0)) s"
[ "$nfail" = 0 ]
