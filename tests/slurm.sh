#!/usr/bin/env bash
# A real single-node Slurm (Debian's slurm-wlm and munge, slurmctld + slurmd on this machine)
# runs deploy/slurm/submit.sh: `tms reproduce intro` as an array job of 4 shards, then the
# dependent merge job. Passes when the merged run reproduces and its weights file is byte for
# byte the one a local `tms reproduce intro` writes. Needs root (or sudo) to install and start
# the daemons; stops what it started. Run by .ci/run (about a minute).
# Usage: tests/slurm.sh [path/to/tms]   (default: target/release/tms)
set -euo pipefail
cd "$(dirname "$0")/.."
tms=$(realpath "${1:-${CARGO_TARGET_DIR:-target}/release/tms}")
[ -x "$tms" ] || { echo "tests/slurm.sh: no tms binary at $tms (cargo build --release)"; exit 1; }
SUDO=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "tests/slurm.sh: needs root or sudo"; exit 1; }
    SUDO="sudo"
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "== installing slurm-wlm and munge"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq slurm-wlm munge >/dev/null
fi

work=$(mktemp -d)
chmod 755 "$work"
started=()
cleanup() {
    for pidfile in "${started[@]}"; do
        [ -f "$pidfile" ] && $SUDO kill "$(cat "$pidfile")" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

echo "== munge"
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    $SUDO mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    $SUDO chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
    $SUDO chmod 400 /etc/munge/munge.key
    if [ -z "$SUDO" ]; then runuser -u munge -- /usr/sbin/munged; else sudo -u munge /usr/sbin/munged; fi
    started+=(/run/munge/munged.pid)
    sleep 1
fi
munge -n | unmunge | grep -q Success

echo "== slurmctld + slurmd"
host=$(hostname -s)
cpus=$(nproc)
$SUDO mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
$SUDO tee /etc/slurm/slurm.conf >/dev/null <<CONF
ClusterName=tms-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MpiDefault=none
NodeName=$host CPUs=$cpus RealMemory=2000 State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
if ! scontrol ping 2>/dev/null | grep -q UP; then
    $SUDO slurmctld
    started+=(/run/slurmctld.pid)
fi
if ! pgrep -x slurmd >/dev/null; then
    $SUDO slurmd
    started+=(/run/slurmd.pid)
fi
for _ in $(seq 1 30); do
    sinfo -h -o %t 2>/dev/null | grep -qE "idle|mix|alloc" && break
    sleep 1
done
sinfo

echo "== 4 shards of tms reproduce intro, then the merge"
submitted=$(TMS="$tms" SBATCH_ARGS="--cpus-per-task=1" deploy/slurm/submit.sh 4 "$work/runs" reproduce intro)
echo "$submitted"
merge_job=$(echo "$submitted" | sed -n 's/.*merge: job \([0-9]*\).*/\1/p')
for _ in $(seq 1 240); do
    [ -z "$(squeue -h -j "$merge_job" 2>/dev/null)" ] && break
    sleep 1
done
cat "$work"/runs/*.log 2>/dev/null | tail -20
[ -f "$work/runs/merged/weights.safetensors" ] || { echo "FAIL: the merge job wrote no run folder"; exit 1; }

echo "== against one local run"
"$tms" reproduce intro --out "$work/local" -q >/dev/null
cmp "$work/local/weights.safetensors" "$work/runs/merged/weights.safetensors"
grep -q '"reproduced": true' "$work/runs/merged/metrics.json"
echo "PASS: 4 Slurm shards merged into intro's weights, byte for byte; verdict reproduced"
