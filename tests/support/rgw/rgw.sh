#!/usr/bin/env bash
# A throw-away single-node Ceph cluster with a RADOS Gateway, for S3 integration tests.
#
#   rgw.sh start <dir> [access-key [secret-key]]   prints "rgw ready http://127.0.0.1:PORT"
#   rgw.sh stop  <dir>                              idempotent
#   rgw.sh stop-gateway  <dir>    kills only the gateway (an S3 outage; the data stays in the OSD)
#   rgw.sh start-gateway <dir>    starts it again on the same port, waits until it answers
#
# Everything (config, mon store, OSD metadata, pid files, logs) lives in <dir>,
# every port is chosen free at start, and the fsid is fresh, so parallel runs never share a
# daemon. The OSD uses memstore: objects vanish with the process, which is what tests want.
# No systemd is involved; the daemons run in the foreground of background jobs whose pids
# are recorded in <dir>/run/*.pid.
#
# Environment:
#   RGW_ACCESS_KEY / RGW_SECRET_KEY  keys of the S3 user when not given as arguments
#   RGW_OWNER_PID                    when set, a watchdog stops the cluster once that process
#                                    is gone (a crashed test binary must not leak daemons)
#   RGW_START_TIMEOUT                seconds to wait for each stage (default 60)
#
# <dir>/env after a successful start (shell syntax, also read by rgw_peer.cpp):
#   RGW_ENDPOINT RGW_ACCESS_KEY RGW_SECRET_KEY RGW_REGION RGW_USER
set -euo pipefail

# The region to sign with. RGW does not compare the credential scope's region with its
# zonegroup (whose api name is "default"), so any region verifies; us-east-1 is what S3
# clients assume when none is configured, and like AWS us-east-1 it wants CreateBucket
# without a LocationConstraint.
readonly REGION=us-east-1
readonly USER_ID=penne

die() {
    echo "rgw.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: rgw.sh start <dir> [access-key [secret-key]] | rgw.sh stop <dir>" \
        "| rgw.sh stop-gateway <dir> | rgw.sh start-gateway <dir>" >&2
    exit 2
}

# An S3 outage for tests: the gateway goes away (connections refused) while the cluster and
# its objects stay; start_gateway brings it back on the same endpoint.
stop_gateway() {
    end_daemon rgw KILL 0
}

start_gateway() {
    local limit=${RGW_START_TIMEOUT:-60} endpoint
    t0=$SECONDS
    [[ -f $DIR/env ]] || die "no cluster in $DIR"
    daemon_alive rgw && die "the gateway in $DIR is running"
    endpoint=$(sed -n 's/^RGW_ENDPOINT=//p' "$DIR/env")
    # Clients know this endpoint, so a restart keeps the port. A gateway that exits while
    # starting (seen under load: the old one's socket not yet released) is started again.
    local attempt
    for attempt in 1 2 3; do
        spawn rgw radosgw -c "$DIR/ceph.conf" -f -n "client.rgw.$USER_ID"
        if wait_until "the gateway at $endpoint" "$limit" s3_answers "$endpoint"; then
            echo "rgw gateway back at $endpoint ($((SECONDS - t0))s, attempt $attempt)"
            return 0
        fi
        if daemon_alive rgw; then
            show_logs
            die "radosgw did not answer on $endpoint within ${limit}s (logs above, all in $DIR/log)"
        fi
        echo "rgw.sh: the gateway exited while starting (attempt $attempt)" >&2
        sleep 1
    done
    show_logs
    die "radosgw exited while starting on $endpoint three times (logs above, all in $DIR/log)"
}

# A TCP port on 127.0.0.1 that is free now, from the kernel's ephemeral range. Should another
# process bind it first, the gateway is restarted on a new port and the monitor fails loudly.
free_port() {
    /usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Runs a ceph CLI as client.admin against this cluster only.
ceph_cli() {
    timeout 30 ceph -c "$DIR/ceph.conf" -n client.admin --connect-timeout 20 "$@"
}

# Waits up to $2 seconds for the command $3... to succeed; gives up when it returns 2 (the
# daemon it waits for has exited) twice, half a second apart: a fresh start-gateway once gave
# up within a second in CI while the new radosgw was still starting.
wait_until() {
    local what=$1 limit=$2 rc
    shift 2
    local deadline=$((SECONDS + limit))
    while :; do
        rc=0
        "$@" >/dev/null 2>&1 || rc=$?
        ((rc == 0)) && return 0
        if ((rc == 2)); then
            sleep 0.5
            rc=0
            "$@" >/dev/null 2>&1 || rc=$?
            ((rc == 0)) && return 0
            if ((rc == 2)); then
                echo "rgw.sh: $what exited while starting" >&2
                return 1
            fi
        fi
        if ((SECONDS >= deadline)); then
            echo "rgw.sh: timed out after ${limit}s waiting for $what" >&2
            return 1
        fi
        sleep 0.2
    done
}

# True while the pid in $1 is alive and is one of our daemons (its command line names our
# config file), so that a recycled pid is never signalled.
our_pid_alive() {
    local pid=$1
    { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -qF -- "$DIR/"
}

daemon_alive() {
    local pidfile="$DIR/run/$1.pid"
    [[ -s $pidfile ]] && our_pid_alive "$(<"$pidfile")"
}

# Starts a daemon in the foreground of a background job, output to <dir>/log/<name>.out.
spawn() {
    local name=$1
    shift
    # setsid: a Ctrl-C aimed at the caller's process group must not half-kill the cluster;
    # the owner watchdog and `stop` are the ways to end it.
    # It execs in place (a background job of a script is no process-group leader), so $! is
    # the daemon's pid.
    setsid "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
    local pid=$! i state
    echo "$pid" >"$DIR/run/$name.pid"
    # Until the exec happens the child still looks like this script; wait for it, so that
    # daemon_alive does not mistake a daemon that is about to start for one that died.
    for ((i = 0; i < 250; i++)); do
        our_pid_alive "$pid" && return 0
        state=$(sed -E 's/.*\) (.).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 0
        [[ $state == Z ]] && return 0
        sleep 0.02
    done
}

# Stage timings go to the setup log, for whoever wonders where start-up time goes.
stage() {
    echo "rgw.sh: $1 after $((SECONDS - t0))s" >>"$DIR/log/setup.out"
}

show_logs() {
    local f
    for f in "$DIR"/log/*; do
        [[ -f $f ]] || continue
        echo "----- $f (last 40 lines)" >&2
        tail -n 40 "$f" >&2
    done
}

write_config() {
    local fsid=$1 mon_port=$2 rgw_port=$3
    cat >"$DIR/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
mon initial members = a
public network = 127.0.0.0/8
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr1 = false
ms bind ipv6 = false
run dir = $DIR/run
# No admin sockets: nothing here uses them, and a Unix socket path is limited to 107 bytes,
# which a deep \$TMPDIR would exceed.
admin socket =
pid file = $DIR/run/\$name.ceph.pid
log file = $DIR/log/\$name.log
log to stderr = false
err to stderr = true
log to syslog = false
mon cluster log to syslog = false
mon cluster log file = $DIR/log/cluster.log
crash dir = $DIR/crash
keyring = $DIR/keyring
# One OSD: replicas of one, no host-level failure domain, few placement groups (RGW creates
# about ten pools and the per-OSD PG limit would otherwise refuse the later ones).
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
# Every pool RGW creates and every OSD boot is a monitor commit; the default one-second
# batching interval alone would make start-up take about ten seconds longer.
paxos propose interval = 0.05
paxos min wait = 0.01

[mon]
mon data = $DIR/mon/\$cluster-\$id

[osd]
osd data = $DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = 4294967296
osd journal size = 0
osd max object name len = 460
osd max object namespace len = 64
osd heartbeat grace = 60

[client.rgw.$USER_ID]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $DIR/rgw
rgw rados pool pg num min = 8
# With auth none the gateway still negotiates a secure msgr2 session with the mon unless
# crc is allowed; without this it loops on auth errors.
ms mon client mode = crc secure
rgw enable usage log = false
rgw dns name = 127.0.0.1
EOF
}

start() {
    local access=${1:-${RGW_ACCESS_KEY:-penneaccesskey}}
    local secret=${2:-${RGW_SECRET_KEY:-pennesecretkey0123456789}}
    local limit=${RGW_START_TIMEOUT:-60}
    t0=$SECONDS

    [[ -f $DIR/ceph.conf ]] && daemon_alive mon && die "a cluster is already running in $DIR"
    for tool in ceph ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool curl \
        uuidgen setsid timeout; do
        command -v "$tool" >/dev/null ||
            die "$tool not found (apt-get install ceph-mon ceph-osd radosgw ceph-common curl)"
    done
    # Leftovers of an earlier cluster in this directory would confuse mkfs.
    stop_all
    rm -rf "${DIR:?}"/{run,log,mon,osd,rgw,crash} "$DIR"/{monmap,keyring,ceph.conf,env}
    mkdir -p "$DIR"/{run,log,mon,osd,rgw,crash}

    local fsid mon_port rgw_port osd_uuid
    fsid=$(uuidgen)
    osd_uuid=$(uuidgen)
    mon_port=$(free_port)
    rgw_port=$(free_port)
    while [[ $rgw_port == "$mon_port" ]]; do rgw_port=$(free_port); done
    write_config "$fsid" "$mon_port" "$rgw_port"
    local conf=(-c "$DIR/ceph.conf")

    # Monitor: a monmap with one member, a store, then the daemon.
    monmaptool --create --fsid "$fsid" --addv a "[v2:127.0.0.1:$mon_port]" \
        "$DIR/monmap" >>"$DIR/log/setup.out" 2>&1 || { show_logs; die "monmaptool failed"; }
    ceph-authtool --create-keyring "$DIR/keyring" --gen-key -n mon. --cap mon 'allow *' \
        >>"$DIR/log/setup.out" 2>&1 || die "ceph-authtool failed"
    ceph-mon "${conf[@]}" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/keyring" \
        >>"$DIR/log/setup.out" 2>&1 || { show_logs; die "ceph-mon --mkfs failed"; }
    spawn mon ceph-mon "${conf[@]}" -f -i a
    if ! wait_until "the monitor" "$limit" mon_answers; then
        show_logs
        stop_all
        die "the monitor did not come up (logs above, all in $DIR/log)"
    fi
    stage "monitor up"

    # OSD: register it, create its (in-memory) store, start it, wait until it is up and in.
    local osd_id
    osd_id=$(ceph_cli osd new "$osd_uuid" 2>>"$DIR/log/setup.out") || {
        show_logs
        stop_all
        die "ceph osd new failed"
    }
    mkdir -p "$DIR/osd/ceph-$osd_id"
    ceph-osd "${conf[@]}" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" \
        >>"$DIR/log/setup.out" 2>&1 || { show_logs; stop_all; die "ceph-osd --mkfs failed"; }
    spawn osd ceph-osd "${conf[@]}" -f -i "$osd_id"
    if ! wait_until "the OSD" "$limit" osd_is_up "$osd_id"; then
        show_logs
        stop_all
        die "the OSD did not come up (logs above, all in $DIR/log)"
    fi

    stage "OSD up"
    # The S3 user, created by client.admin (the gateway's own name has no admin rights) before
    # the gateway starts: then the endpoint never answers without the user, and the admin
    # tool's change notification has no gateway (dead or alive) to wait for.
    if ! timeout 60 radosgw-admin "${conf[@]}" -n client.admin user create --uid "$USER_ID" \
        --display-name "penne tests" --access-key "$access" --secret-key "$secret" \
        >/dev/null 2>>"$DIR/log/setup.out"; then
        show_logs
        stop_all
        die "radosgw-admin user create failed (logs above, all in $DIR/log)"
    fi

    stage "user created"
    # Gateway. Its port was free a moment ago; if another process took it since, the gateway
    # exits and is started again on a fresh port.
    local endpoint attempt
    for attempt in 1 2 3; do
        endpoint="http://127.0.0.1:$rgw_port"
        spawn rgw radosgw "${conf[@]}" -f -n "client.rgw.$USER_ID"
        wait_until "the gateway at $endpoint" "$limit" s3_answers "$endpoint" && break
        if daemon_alive rgw || ((attempt == 3)); then
            show_logs
            stop_all
            die "radosgw did not answer on $endpoint (logs above, all in $DIR/log)"
        fi
        rgw_port=$(free_port)
        sed -i "s|^rgw frontends = .*|rgw frontends = beast endpoint=127.0.0.1:$rgw_port|" \
            "$DIR/ceph.conf"
    done

    stage "gateway answers"
    {
        printf 'RGW_ENDPOINT=%s\n' "$endpoint"
        printf 'RGW_ACCESS_KEY=%s\n' "$access"
        printf 'RGW_SECRET_KEY=%s\n' "$secret"
        printf 'RGW_REGION=%s\n' "$REGION"
        printf 'RGW_USER=%s\n' "$USER_ID"
    } >"$DIR/env.tmp"
    chmod 600 "$DIR/env.tmp"
    mv "$DIR/env.tmp" "$DIR/env"

    if [[ -n ${RGW_OWNER_PID:-} ]]; then
        start_watchdog "$RGW_OWNER_PID"
    fi
    echo "rgw ready $endpoint ($((SECONDS - t0))s, logs in $DIR/log)"
}

mon_answers() {
    daemon_alive mon || return 2
    ceph_cli mon stat
}

osd_is_up() {
    daemon_alive osd || return 2
    ceph_cli osd dump 2>/dev/null | grep -Eq "^osd\.$1 up +in "
}

# Any HTTP answer from the gateway means the frontend runs; an anonymous GET / is answered
# with an (empty) ListAllMyBucketsResult once the gateway has finished initialising.
s3_answers() {
    daemon_alive rgw || return 2
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1/") || return 1
    [[ $code == 200 ]]
}

# Stops the cluster when the owning process (a test binary) disappears, even if it crashed.
start_watchdog() {
    local owner=$1 self
    self=$(readlink -f "${BASH_SOURCE[0]}")
    # shellcheck disable=SC2016 # expanded by the inner shell
    setsid bash -c '
        owner=$1 dir=$2 script=$3
        echo $$ >"$dir/run/watchdog.pid"
        while kill -0 "$owner" 2>/dev/null && [[ -f "$dir/run/mon.pid" ]]; do sleep 1; done
        [[ -f "$dir/run/mon.pid" ]] && "$script" stop "$dir"
    ' rgw-watchdog "$owner" "$DIR" "$self" </dev/null >>"$DIR/log/watchdog.out" 2>&1 &
}

# Sends $2 to daemon $1, waits up to $3 tenths of a second, then uses SIGKILL.
end_daemon() {
    local name=$1 sig=$2 grace=$3 pid i
    [[ -s $DIR/run/$name.pid ]] || return 0
    pid=$(<"$DIR/run/$name.pid")
    our_pid_alive "$pid" || return 0
    kill -"$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < grace; i++)); do
        our_pid_alive "$pid" || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        our_pid_alive "$pid" || return 0
        sleep 0.1
    done
    echo "rgw.sh: $name (pid $pid) survived SIGKILL" >&2
}

# Ends the daemons in reverse order of start: the gateway shuts down cleanly in well under a
# second while the cluster is still there (but hangs if the mon or OSD go first), the OSD is
# killed outright (a clean stop takes seconds and its memstore is thrown away anyway).
stop_all() {
    local pid
    [[ -d $DIR/run ]] || return 0
    end_daemon rgw TERM 20
    end_daemon osd KILL 0
    end_daemon mon TERM 20
    rm -f "$DIR"/run/{rgw,osd,mon}.pid "$DIR/env"
    # The watchdog exits by itself once mon.pid is gone; end it now unless it is our caller.
    if [[ -s $DIR/run/watchdog.pid ]]; then
        pid=$(<"$DIR/run/watchdog.pid")
        rm -f "$DIR/run/watchdog.pid"
        if [[ $pid != "$PPID" ]] &&
            { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep -q rgw-watchdog; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    fi
}

[[ $# -ge 2 ]] || usage
cmd=$1
DIR=$2
shift 2
[[ -n $DIR ]] || usage
if [[ $cmd == stop && ! -d $DIR ]]; then exit 0; fi
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd -P)
readonly DIR

case $cmd in
start) start "$@" ;;
stop) stop_all ;;
stop-gateway) stop_gateway ;;
start-gateway) start_gateway ;;
*) usage ;;
esac
