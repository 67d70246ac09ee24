# shellcheck shell=bash
# tests/slurm/cluster.sh: a one-node Slurm cluster on loopback for tests.
# Sourced by tests/slurm/test_slurm.sh (bash). Needs root and Debian's
# slurm-wlm and munge (scripts/install-deps.sh). Everything lives in one
# temporary directory: munge key and socket, slurm.conf, state, spool, logs.
# The daemons run in the foreground as children of the test, so their PIDs
# are known and cluster_stop ends exactly those (plus the jobs it submitted).
#
#   cluster_require            fail with a clear message if something is missing
#   cluster_start DIR          start munged, slurmctld, slurmd; export SLURM_CONF
#   cluster_stop               cancel the jobs, stop the three daemons
#   wait_until SECONDS WHAT CMD...   poll CMD every 0.5 s, fail after SECONDS
#   job_field JOBID FIELD      a field of `scontrol show job` (JobState, Restarts, ...)

CLUSTER_DIR=""
CLUSTER_PIDS=()   # "name:pid", started by cluster_start
CLUSTER_JOBS=()   # job ids submitted by the test (cluster_stop cancels them)

cluster_log() { echo "[slurm-test $(date +%T)] $*" >&2; }

cluster_require() {
  local missing=() c
  for c in munged munge slurmctld slurmd slurmstepd sbatch srun scontrol squeue sinfo scancel; do
    command -v "$c" >/dev/null 2>&1 || [[ -x /usr/sbin/$c ]] || missing+=("$c")
  done
  if ((${#missing[@]})); then
    echo "FAIL: Slurm test needs ${missing[*]}: install Debian's slurm-wlm and munge (scripts/install-deps.sh)" >&2
    return 1
  fi
  if [[ $(id -u) -ne 0 ]]; then
    echo "FAIL: Slurm test needs root (slurmd runs jobs as their users); run it as root, e.g. in the CI container" >&2
    return 1
  fi
  if ! ls /usr/lib/x86_64-linux-gnu/slurm-wlm/mpi_pmix*.so /usr/lib/*/slurm*/mpi_pmix*.so >/dev/null 2>&1; then
    echo "FAIL: Slurm's PMIx plugin (mpi_pmix.so, Debian slurm-wlm-basic-plugins) is missing; run scripts/install-deps.sh" >&2
    return 1
  fi
}

# Two free TCP ports on loopback.
free_ports() {
  /usr/bin/python3 - <<'EOF'
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))
EOF
}

wait_until() {
  local limit=$1 what=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      cluster_log "timed out after ${limit}s waiting for: $what"
      return 1
    fi
    sleep 0.5
  done
}

job_field() {
  scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

_node_idle() { [[ $(sinfo -h -n localhost -o %T 2>/dev/null) == idle ]]; }

_start_daemon() {
  local name=$1
  shift
  "$@" >"$CLUSTER_DIR/log/$name.out" 2>&1 &
  CLUSTER_PIDS+=("$name:$!")
  cluster_log "started $name (pid $!)"
}

cluster_start() {
  CLUSTER_DIR=$1
  mkdir -p "$CLUSTER_DIR"/{munge,state,spool,log,tmp}
  # munged insists on private key and socket directories reachable by all.
  chmod 755 "$CLUSTER_DIR"
  chmod 700 "$CLUSTER_DIR/munge"
  head -c 1024 /dev/urandom >"$CLUSTER_DIR/munge/munge.key"
  chmod 600 "$CLUSTER_DIR/munge/munge.key"
  local sock=$CLUSTER_DIR/munge/munge.sock
  _start_daemon munged "$(command -v munged || echo /usr/sbin/munged)" --foreground --force \
    --socket="$sock" --key-file="$CLUSTER_DIR/munge/munge.key" \
    --pid-file="$CLUSTER_DIR/munge/munged.pid" --seed-file="$CLUSTER_DIR/munge/seed" \
    --log-file="$CLUSTER_DIR/log/munged.log"
  wait_until 20 "munged socket" test -S "$sock" || return 1
  chmod 711 "$CLUSTER_DIR/munge"

  local ports cpus user
  read -r -a ports <<<"$(free_ports)"
  # The node as slurmd sees it (CPUs, sockets, cores, threads, memory).
  cpus=$(slurmd -C 2>/dev/null | head -n 1 | tr ' ' '\n' | grep -E '^(CPUs|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')
  [[ -n $cpus ]] || cpus="CPUs=$(nproc)"
  user=$(id -un)
  cat >"$CLUSTER_DIR/slurm.conf" <<EOF
# One-node test cluster written by tests/slurm/cluster.sh.
ClusterName=rntest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=${ports[0]}
SlurmdPort=${ports[1]}
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$CLUSTER_DIR/state
SlurmdSpoolDir=$CLUSTER_DIR/spool
TmpFS=$CLUSTER_DIR/tmp
SlurmctldPidFile=$CLUSTER_DIR/slurmctld.pid
SlurmdPidFile=$CLUSTER_DIR/slurmd.pid
SlurmctldLogFile=$CLUSTER_DIR/log/slurmctld.log
SlurmdLogFile=$CLUSTER_DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=${RN_SLURMD_DEBUG:-info}
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
JobRequeue=1
ReturnToService=2
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=2
MessageTimeout=10
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
MinJobAge=600
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
PropagateResourceLimits=NONE
# Two GPUs that do not exist: the batch script's --gres=gpu:N request is
# scheduled as on a real GPU node (nothing opens a device here).
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 $cpus Gres=gpu:2 State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
  # Slurm drops a GPU without a device file; links to /dev/null stand in.
  mkdir -p "$CLUSTER_DIR/dev"
  ln -sf /dev/null "$CLUSTER_DIR/dev/fakegpu0"
  ln -sf /dev/null "$CLUSTER_DIR/dev/fakegpu1"
  cat >"$CLUSTER_DIR/gres.conf" <<EOF
AutoDetect=off
NodeName=localhost Name=gpu File=$CLUSTER_DIR/dev/fakegpu[0-1]
EOF
  export SLURM_CONF=$CLUSTER_DIR/slurm.conf
  _start_daemon slurmctld "$(command -v slurmctld || echo /usr/sbin/slurmctld)" -D -i -f "$SLURM_CONF"
  _start_daemon slurmd "$(command -v slurmd || echo /usr/sbin/slurmd)" -D -N localhost -f "$SLURM_CONF"
  if ! wait_until 60 "node localhost idle (sinfo)" _node_idle; then
    sinfo -N -l >&2 || true
    return 1
  fi
  cluster_log "cluster up: $(sinfo -h -o '%P %a %D %T %C' 2>/dev/null) (conf $SLURM_CONF)"
}

_jobs_gone() {
  local j s
  for j in "${CLUSTER_JOBS[@]}"; do
    s=$(job_field "$j" JobState)
    case $s in RUNNING | COMPLETING | CONFIGURING | SUSPENDED | REQUEUED | REQUEUE_HOLD | PENDING) return 1 ;; esac
  done
}

cluster_stop() {
  local entry name pid
  if ((${#CLUSTER_JOBS[@]})) && [[ -n ${SLURM_CONF:-} ]]; then
    scancel "${CLUSTER_JOBS[@]}" 2>/dev/null || true
    wait_until 40 "jobs ${CLUSTER_JOBS[*]} to end" _jobs_gone || true
  fi
  # Reverse order: slurmd, slurmctld, munged.
  local i
  for ((i = ${#CLUSTER_PIDS[@]} - 1; i >= 0; i--)); do
    entry=${CLUSTER_PIDS[i]}
    name=${entry%%:*}
    pid=${entry##*:}
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      cluster_log "$name (pid $pid) ignored SIGTERM; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    cluster_log "stopped $name (pid $pid)"
  done
  CLUSTER_PIDS=()
}

# Last lines of the daemons' logs, for a failing test.
cluster_dump_logs() {
  local f
  for f in "$CLUSTER_DIR"/log/*; do
    [[ -f $f ]] || continue
    echo "----- $f (last 25 lines)" >&2
    tail -n 25 "$f" >&2
  done
}
