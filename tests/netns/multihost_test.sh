#!/usr/bin/env bash
# tests/netns/multihost_test.sh: multi-host runs without a cluster.
#
#   tests/netns/multihost_test.sh TEST [--bin-dir DIR] [--hosts N] [--keep]
#
# Makes N "hosts" (default 3) on this machine: network namespaces rnmh1..N,
# each with a veth link (eth0, 10.77.0.I/24) to a bridge in the root
# namespace (rnmhbr, 10.77.0.254), where mpirun runs. mpirun starts its
# daemons on the hosts through tests/netns/netns_agent.sh (`ip netns exec`
# in place of ssh; the hostfile names the hosts by address, slots=1) and the
# ranks talk over TCP only: `--mca pml ob1 --mca btl tcp,self` (no shared
# memory) restricted to the veth subnet, out-of-band traffic too. TEST:
#   multihost_train  10 steps of cifar-resnet8 with the ring all-reduce, one
#                    rank per host; checks exit 0, a complete checkpoint at
#                    step 10, that each rank ran in its own namespace with its
#                    host's address, and that every host's veth carried at
#                    least the all-reduce lower bound (steps x 2(N-1)/N x the
#                    gradient bytes) each way
#   rank_killed      a longer run (checkpoint every 5 steps, comm.timeout 10);
#                    once it has checkpointed, `kill -9` the rank on host 2;
#                    the job must end non-zero within the comm timeout (plus a
#                    grace for teardown) with an error naming that rank, leave
#                    a complete checkpoint, and a run with --resume auto on
#                    the same hosts must continue from it and finish
#   link_down        the same, but host 2's link is cut (`ip link set rnmhv2
#                    down`: the rank lives on, unreachable). Open MPI's
#                    out-of-band keepalive is shortened (oob_tcp_keepalive_*)
#                    so mpirun notices the lost daemon before the ranks' comm
#                    timeout; without it mpirun hangs in teardown (see
#                    tests/netns/README.md)
#   bench            not a test: ring all-reduce bus bandwidth (resnet-bench
#                    allreduce) across 2 and 3 hosts, unshaped and with every
#                    link shaped to RN_NETNS_RATE (default 100mbit, tc tbf on
#                    both directions); prints a Markdown table
# Needs root (namespaces, veths, a bridge), iproute2 (ip, tc, ss),
# util-linux (unshare, flock), Open MPI, /usr/bin/python3 with h5py. Without
# them the test FAILS saying so. Every wait is bounded; on exit a trap kills
# what the test started (mpirun, every process left in its namespaces) and
# deletes the namespaces, veths and bridge. Runs one at a time (a lock), and
# first removes leftovers of an earlier run that was killed (same names).
# --keep (or RN_NETNS_TEST_KEEP=1) keeps the temporary directory.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

test_name=${1:-}
shift || true
bin_dir=$repo/build/bin
hosts=3
keep=${RN_NETNS_TEST_KEEP:-0}
usage="usage: $0 multihost_train|rank_killed|link_down|bench [--bin-dir DIR] [--hosts N] [--keep]"
while (($#)); do
  case $1 in
    --bin-dir) bin_dir=$2; shift 2 ;;
    --hosts) hosts=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
case $test_name in
  multihost_train | rank_killed | link_down | bench) ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
[[ $hosts =~ ^[2-9]$ ]] || { echo "--hosts: 2..9" >&2; exit 2; }

P=rnmh                                # prefix of every name the test creates
SUBNET=${RN_NETNS_SUBNET:-10.77.0}    # hosts are SUBNET.1..N, the bridge SUBNET.254
BR=${P}br
COMM_TIMEOUT=${RN_NETNS_COMM_TIMEOUT:-10}
GRACE=${RN_NETNS_GRACE:-5}            # seconds allowed past the comm timeout for teardown
PY=/usr/bin/python3
export OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Inside a Slurm job mpirun would take its hosts from Slurm: not here.
for v in "${!SLURM_@}"; do unset "$v"; done

fail() {
  echo "FAIL (netns.$test_name): $*" >&2
  exit 1
}
note() { echo "[netns.$test_name] $*"; }
now() { echo "$EPOCHREALTIME"; }
secs_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }'; }

# --- requirements: fail (never skip) when the machine cannot do it ---
[[ $(id -u) -eq 0 ]] || fail "needs root to create network namespaces, veths and a bridge (run ctest as root, e.g. in the CI container)"
for tool in ip tc ss unshare flock mpirun; do
  command -v "$tool" >/dev/null || fail "$tool not found: install iproute2 (ip, tc, ss), util-linux (unshare, flock) and openmpi-bin (scripts/install-deps.sh)"
done
[[ -x $bin_dir/resnet-train && -x $bin_dir/resnet-bench ]] || fail "resnet-train/resnet-bench not found in $bin_dir (build them, or pass --bin-dir)"
[[ -x $here/netns_agent.sh ]] || fail "$here/netns_agent.sh is not executable (mpirun runs it as its rsh agent): chmod +x it"
$PY -c "import h5py" 2>/dev/null || fail "$PY cannot import h5py: install python3-h5py (scripts/install-deps.sh)"

# One run at a time: the names and the subnet are fixed. The lock is on this
# script itself, so that nothing is left behind.
exec 9<"$here/multihost_test.sh"
flock -w 60 9 || fail "another netns test has held the lock (flock on $here/multihost_test.sh) for more than 60 s"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rn-netns-$test_name.XXXXXX")
mpirun_pid=""

ns_names() { ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${P}[0-9]+$"; }
our_links() { ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E "^${P}"; }

# Kills every process in our namespaces (orted, ranks, agents: all started
# by this test), deletes the veths (both ends), the namespaces, the bridge.
net_teardown() {
  local ns pid l i
  for ns in $(ns_names); do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
  done
  for l in $(our_links); do [[ $l == "$BR" ]] || ip link del "$l" 2>/dev/null; done
  for ns in $(ns_names); do ip netns del "$ns" 2>/dev/null; done
  ip link del "$BR" 2>/dev/null
  # Namespace and link deletion finish asynchronously: wait (bounded).
  for i in $(seq 50); do
    [[ -z $(our_links) && -z $(ns_names) ]] && return 0
    sleep 0.1
  done
  echo "warning: left over after cleanup: $(our_links) $(ns_names)" >&2
}

# shellcheck disable=SC2317  # invoked by the trap
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $mpirun_pid ]] && kill -0 "$mpirun_pid" 2>/dev/null; then
    kill -TERM "$mpirun_pid" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$mpirun_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$mpirun_pid" 2>/dev/null
  fi
  net_teardown
  if ((rc != 0)) || [[ $keep == 1 ]]; then
    echo "[netns.$test_name] files kept in $tmp" >&2
  else
    rm -rf "$tmp"
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the network ---
net_setup() {
  local n=$1 i ns
  if [[ -n $(ns_names) || -n $(our_links) ]]; then
    note "removing leftovers of an earlier run: $(ns_names | tr '\n' ' ')$(our_links | tr '\n' ' ')"
    net_teardown
  fi
  if ip -4 route show to match "$SUBNET.1" | grep -v '^default' | grep -q .; then
    fail "$SUBNET.0/24 is already routed here ($(ip -4 route show to match "$SUBNET.1" | grep -v '^default' | head -1)); set RN_NETNS_SUBNET to a free /24 prefix"
  fi
  ip netns add "${P}probe" 2>"$tmp/netns.err" ||
    fail "cannot create a network namespace (ip netns add: $(cat "$tmp/netns.err")); needs root with CAP_SYS_ADMIN, not a restricted container"
  ip netns del "${P}probe"
  ip link add "$BR" type bridge || fail "cannot create a bridge (ip link add type bridge); the kernel needs CONFIG_BRIDGE"
  ip addr add "$SUBNET.254/24" dev "$BR"
  ip link set "$BR" up
  for i in $(seq "$n"); do
    ns=$P$i
    ip netns add "$ns" || fail "ip netns add $ns"
    ip link add "${P}v$i" type veth peer name eth0 netns "$ns" || fail "cannot create veth ${P}v$i (kernel needs CONFIG_VETH)"
    ip link set "${P}v$i" master "$BR" up
    ip -n "$ns" addr add "$SUBNET.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
  done
  # Every host reaches the bridge and the others: a TCP connect to port 9
  # that succeeds or is refused proves it (no ping needed). Bounded.
  local a b ok msg
  for a in $(seq "$n"); do
    for b in 254 $(seq "$n"); do
      [[ $b == "$a" ]] && continue
      ok=0
      for _ in $(seq 20); do
        if msg=$(ip netns exec "$P$a" timeout 2 bash -c "exec 3<>/dev/tcp/$SUBNET.$b/9" 2>&1) || [[ $msg == *refused* ]]; then
          ok=1
          break
        fi
        sleep 0.2
      done
      ((ok)) || fail "host $P$a cannot reach $SUBNET.$b over the bridge"
    done
  done
  : >"$tmp/hostfile"
  RN_NETNS_MAP=""
  for i in $(seq "$n"); do
    echo "$SUBNET.$i slots=1" >>"$tmp/hostfile"
    RN_NETNS_MAP+="$SUBNET.$i=$P$i "
  done
  export RN_NETNS_MAP RN_NETNS_AGENT_LOG=$tmp/agent.log
  note "$n hosts: $(for i in $(seq "$n"); do printf '%s=%s.%s ' "$P$i" "$SUBNET" "$i"; done)bridge $BR=$SUBNET.254"
}

# mpirun over the namespaces: rsh launch through the agent, TCP only.
# Sets MPI_ARGS for NP ranks.
mpi_args() {
  local np=$1
  # shellcheck disable=SC2054  # commas belong to the btl list
  MPI_ARGS=(--hostfile "$tmp/hostfile" -np "$np" --map-by node --bind-to none \
    --mca plm rsh --mca plm_rsh_agent "$here/netns_agent.sh" --mca plm_rsh_no_tree_spawn 1 \
    --mca oob_tcp_if_include "$SUBNET.0/24" \
    --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include "$SUBNET.0/24" \
    -x OMP_NUM_THREADS)
}

veth_bytes() {  # root-side counters of host I's link: "sent-by-host received-by-host"
  echo "$(cat "/sys/class/net/${P}v$1/statistics/rx_bytes") $(cat "/sys/class/net/${P}v$1/statistics/tx_bytes")"
}

# "step complete world_size" of a checkpoint, or "missing".
ckpt_info() {
  $PY - "$1" <<'EOF' 2>/dev/null || echo missing
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    a = f.attrs
    print(int(a["step"]), int(a["complete"]), int(a.get("world_size", 0)))
EOF
}

# Trainable parameters (the gradient's length): the optimizer's momentum buffers.
grad_params() {
  $PY - "$1" <<'EOF'
import sys, h5py
n = 0
def add(name, obj):
    global n
    if isinstance(obj, h5py.Dataset):
        n += obj.size
with h5py.File(sys.argv[1], "r") as f:
    f["optimizer/momentum"].visititems(add)
print(n)
EOF
}

TRAIN_ARGS=(--model.arch=cifar-resnet8 --data.image_size=16 --data.synthetic_samples=256 --data.val_samples=0
  --train.batch_size=8 --train.threads=1 --checkpoint.every_minutes=0)

# ------------------------------------------------------------------------
test_multihost_train() {
  local n=$hosts out=$tmp/run steps=10 i
  net_setup "$n"
  mkdir -p "$tmp/probe"
  declare -a before after
  for i in $(seq "$n"); do before[i]=$(veth_bytes "$i"); done
  note "training $steps steps on $n hosts"
  local t0 rc
  t0=$(now)
  mpi_args "$n"
  timeout -k 10 180 mpirun "${MPI_ARGS[@]}" sh "$here/rank_probe.sh" "$tmp/probe" \
    "$bin_dir/resnet-train" "${TRAIN_ARGS[@]}" --train.max_steps=$steps --train.output_dir="$out" \
    >"$tmp/train.log" 2>&1
  rc=$?
  sed 's/^/  | /' "$tmp/train.log"
  note "mpirun exit $rc after $(secs_since "$t0") s"
  ((rc == 0)) || fail "mpirun exited $rc (124/137: the 180 s timeout)"
  for i in $(seq "$n"); do after[i]=$(veth_bytes "$i"); done

  local info
  info=$(ckpt_info "$out/checkpoint.h5")
  note "checkpoint.h5 (step complete world_size): $info"
  [[ $info == "$steps 1 $n" ]] || fail "expected a complete checkpoint at step $steps saved by $n ranks, got '$info'"
  grep -q "ring all-reduce" "$tmp/train.log" || fail "the run did not use the ring all-reduce"

  # Each rank ran in its own namespace, with its host's address.
  local root_ns seen="" r f ns addrs hn
  root_ns=$(readlink /proc/self/ns/net)
  for r in $(seq 0 $((n - 1))); do
    f=$tmp/probe/rank-$r.txt
    [[ -f $f ]] || fail "rank $r did not report where it ran ($f missing)"
    ns=$(sed -n 's/^netns=//p' "$f"); addrs=$(sed -n 's/^addrs=//p' "$f"); hn=$(sed -n 's/^hostname=//p' "$f")
    note "rank $r: host $hn, $ns, addresses $addrs"
    [[ $ns != "$root_ns" ]] || fail "rank $r ran in the root network namespace"
    [[ " $seen " != *" $ns "* ]] || fail "rank $r shares network namespace $ns with another rank"
    seen+=" $ns"
    [[ $addrs == *"$SUBNET."* ]] || fail "rank $r has no address in $SUBNET.0/24"
  done

  # Traffic went over the veths: at least the all-reduce lower bound.
  local params grad_bytes bound sent recv b a
  params=$(grad_params "$out/checkpoint.h5") || fail "cannot read the parameters of $out/checkpoint.h5"
  grad_bytes=$((params * 4))
  bound=$((steps * 2 * (n - 1) * grad_bytes / n))
  note "gradient: $params fp32 values = $grad_bytes B; ring lower bound per host and direction: $steps x 2($n-1)/$n x $grad_bytes = $bound B"
  for i in $(seq "$n"); do
    read -r b0 b1 <<<"${before[i]}"
    read -r a0 a1 <<<"${after[i]}"
    sent=$((a0 - b0)); recv=$((a1 - b1))
    note "host $P$i (${P}v$i): sent $sent B, received $recv B over TCP"
    ((sent >= bound && recv >= bound)) || fail "host $P$i moved less than the all-reduce lower bound ($bound B) over its link: not over TCP?"
  done
  note "PASS: $n ranks in $n namespaces trained $steps steps over TCP; checkpoint complete at step $steps"
}

# ------------------------------------------------------------------------
# rank_killed / link_down: fault on host 2 (rank 1) mid-run.
test_fault() {
  local mode=$1 n=$hosts out=$tmp/run victim_host=2 victim_rank=1 max_steps=200 i
  local vip=$SUBNET.$victim_host
  net_setup "$n"
  local extra=()
  if [[ $mode == link_down ]]; then
    # mpirun's link to each daemon is idle during training; probe it every
    # second after 2 idle seconds, give up after 3 misses (~5 s < comm timeout).
    extra=(--mca oob_tcp_keepalive_time 2 --mca oob_tcp_keepalive_intvl 1 --mca oob_tcp_keepalive_probes 3)
  fi
  local run_args=("${TRAIN_ARGS[@]}" --train.epochs=1000 --train.max_steps="$max_steps"
    --checkpoint.every_steps=5 --comm.timeout="$COMM_TIMEOUT" --train.output_dir="$out")
  note "training up to $max_steps steps on $n hosts (checkpoint every 5 steps, comm.timeout $COMM_TIMEOUT s)"
  mpi_args "$n"
  mpirun "${MPI_ARGS[@]}" "${extra[@]}" "$bin_dir/resnet-train" "${run_args[@]}" >"$tmp/fault.log" 2>&1 &
  mpirun_pid=$!

  # Wait (bounded) until the run has checkpointed at step 10 or later.
  local ok=0
  for _ in $(seq 1200); do  # 120 s
    [[ -e $out/checkpoint-00000010.h5 ]] && { ok=1; break; }
    kill -0 "$mpirun_pid" 2>/dev/null || break
    sleep 0.1
  done
  ((ok)) || { sed 's/^/  | /' "$tmp/fault.log"; fail "no checkpoint at step 10 within 120 s"; }

  # One resnet-train per namespace, and the victim talks TCP to the others.
  local pid victim="" count comm
  for i in $(seq "$n"); do
    count=0
    for pid in $(ip netns pids "$P$i"); do
      comm=$(cat "/proc/$pid/comm" 2>/dev/null)
      if [[ $comm == resnet-train ]]; then
        count=$((count + 1))
        ((i == victim_host)) && victim=$pid
      fi
    done
    ((count == 1)) || fail "host $P$i runs $count resnet-train processes (expected 1)"
  done
  ip netns exec "$P$victim_host" ss -tnpH state established >"$tmp/ss.txt" 2>&1
  note "TCP connections of host $P$victim_host's rank (ss -tnp):"
  grep resnet-train "$tmp/ss.txt" | grep -v 127.0.0.1 | sed 's/^/  | /'
  grep resnet-train "$tmp/ss.txt" | grep -v "$SUBNET.254" | grep -E "$SUBNET\.[0-9]+:[0-9]+ +$SUBNET\.[0-9]+:" -q ||
    fail "host $P$victim_host's rank has no TCP connection to another host's rank"
  local ck_before
  ck_before=$(ckpt_info "$out/checkpoint.h5")

  local t0 t_err="" rc
  t0=$(now)
  if [[ $mode == rank_killed ]]; then
    note "kill -9 $victim (rank $victim_rank, resnet-train on host $P$victim_host, $vip); checkpoint.h5 a moment before: $ck_before"
    kill -9 "$victim"
  else
    note "link down: ip link set ${P}v$victim_host down (rank $victim_rank on host $P$victim_host, $vip, stays alive); checkpoint.h5 a moment before: $ck_before"
    ip link set "${P}v$victim_host" down
  fi
  local limit=$((COMM_TIMEOUT + 60)) hung=0
  while kill -0 "$mpirun_pid" 2>/dev/null; do
    if [[ -z $t_err ]] && grep -q -E "error:|mpirun noticed|lost communication|peer process has unexpectedly" "$tmp/fault.log"; then
      t_err=$(secs_since "$t0")
    fi
    if (($(awk -v s="$(secs_since "$t0")" -v l="$limit" 'BEGIN { print (s > l) }'))); then
      hung=1
      break
    fi
    sleep 0.1
  done
  local elapsed
  elapsed=$(secs_since "$t0")
  if ((hung)); then
    kill -TERM "$mpirun_pid" 2>/dev/null
    sleep 2
    kill -KILL "$mpirun_pid" 2>/dev/null
  fi
  wait "$mpirun_pid"
  rc=$?
  mpirun_pid=""
  local fault_rc=$rc
  [[ -z $t_err ]] && grep -q -E "error:|mpirun noticed|lost communication" "$tmp/fault.log" && t_err=$elapsed
  sed 's/^/  | /' "$tmp/fault.log"
  note "first error after ${t_err:-never} s; mpirun exited with status $rc after $elapsed s (comm.timeout $COMM_TIMEOUT s)"
  ((hung == 0)) || fail "mpirun still running $limit s after the fault: the job hung"
  ((rc != 0)) || fail "mpirun exited 0 after a rank was lost"
  awk -v e="$elapsed" -v l="$((COMM_TIMEOUT + GRACE))" 'BEGIN { exit !(e <= l) }' ||
    fail "the job took $elapsed s to end, more than comm.timeout $COMM_TIMEOUT s + $GRACE s"
  # The error names the lost rank or its host.
  local named
  named=$(grep -E "rank $victim_rank( |$)|process rank $victim_rank |on node $vip|Peer host: +$vip" "$tmp/fault.log")
  [[ -n $named ]] || fail "no error message names rank $victim_rank or its host $vip"
  note "the error names the lost peer:"
  while IFS= read -r l; do echo "  > $l"; done <<<"$named"

  # Nothing left running on the hosts (ranks and daemons), bounded wait.
  local left=""
  for _ in $(seq 100); do
    left=""
    for i in $(seq "$n"); do
      for pid in $(ip netns pids "$P$i"); do left+="$P$i:$(cat "/proc/$pid/comm" 2>/dev/null)($pid) "; done
    done
    [[ -z $left ]] && break
    sleep 0.1
  done
  [[ -z $left ]] || note "still running 10 s after mpirun ended (killed at cleanup): $left"
  [[ $left != *resnet-train* ]] || fail "resnet-train ranks outlived mpirun: $left"

  # The last checkpoint is complete and resumable.
  local info step f
  info=$(ckpt_info "$out/checkpoint.h5")
  note "checkpoint.h5 after the fault (step complete world_size): $info"
  read -r step complete _ <<<"$info"
  [[ $complete == 1 ]] || fail "checkpoint.h5 is not complete: '$info'"
  ((step >= 10 && step < max_steps)) || fail "checkpoint.h5 is at step $step, expected 10..$((max_steps - 1))"
  for f in "$out"/checkpoint-*.h5; do
    [[ $(ckpt_info "$f") == *" 1 "* ]] || fail "$f is not a complete checkpoint"
  done
  for f in "$out"/.*.tmp; do
    [[ -e $f ]] && note "an unfinished checkpoint was left: $f (resume ignores it)"
  done

  [[ $mode == link_down ]] && ip link set "${P}v$victim_host" up
  note "resuming on $n hosts with --resume auto"
  t0=$(now)
  timeout -k 10 120 mpirun "${MPI_ARGS[@]}" "$bin_dir/resnet-train" "${run_args[@]}" --resume auto \
    >"$tmp/resume.log" 2>&1
  rc=$?
  grep -E "^resuming|^finished" "$tmp/resume.log" | sed 's/^/  | /'
  note "resumed run: exit $rc after $(secs_since "$t0") s"
  ((rc == 0)) || fail "the resumed run exited $rc"
  grep -q -E "resuming .*checkpoint-0*$step\.h5 at step $step\b" "$tmp/resume.log" || fail "the resumed run did not start from step $step"
  info=$(ckpt_info "$out/checkpoint.h5")
  [[ $info == "$max_steps 1 $n" ]] || fail "after resuming expected a complete checkpoint at step $max_steps, got '$info'"
  note "PASS: lost rank $victim_rank ($mode) ended the job in $elapsed s with status $fault_rc; resumed from step $step and finished at step $max_steps"
}

# ------------------------------------------------------------------------
# Not a test: bus bandwidth of the ring across hosts, unshaped and shaped.
# Two Open MPI TCP settings: the defaults (eager limit 64 KiB: every 256 KiB
# ring segment goes by rendezvous, whose acknowledgement waits behind the
# peer's own bulk data when two hosts send to each other over one TCP
# connection, N = 2), and an eager limit of 1 MiB (above the segment size:
# no rendezvous).
test_bench() {
  local rate=${RN_NETNS_RATE:-100mbit} n_list=${RN_NETNS_BENCH_HOSTS:-"2 3"} n i shaped v
  local max_unshaped=${RN_NETNS_BENCH_MAX_UNSHAPED:-64M} max_shaped=${RN_NETNS_BENCH_MAX_SHAPED:-16M}
  local -a variants=("default" "eager 1 MiB")
  local -a variant_args=("" "--mca btl_tcp_eager_limit 1048576 --mca btl_tcp_rndv_eager_limit 1048576 --mca btl_tcp_max_send_size 1048576")
  net_setup 3
  local rate_mbs
  rate_mbs=$(awk -v r="$rate" 'BEGIN { if (r ~ /gbit$/) m = 1000; else if (r ~ /mbit$/) m = 1; else m = 0; sub(/[a-z]+$/, "", r); printf "%.2f", r * m / 8 }')
  echo "| hosts | link | Open MPI tcp | size | time (ms) | algbw (MB/s) | busbw (MB/s) | busbw / link rate |" >"$tmp/table.md"
  echo "|---|---|---|---|---|---|---|---|" >>"$tmp/table.md"
  for shaped in 0 1; do
    if ((shaped)); then
      for i in 1 2 3; do  # both directions of every link: the host's egress and ingress
        tc qdisc replace dev "${P}v$i" root tbf rate "$rate" burst 64kb latency 20ms || fail "tc tbf on ${P}v$i"
        ip netns exec "$P$i" tc qdisc replace dev eth0 root tbf rate "$rate" burst 64kb latency 20ms || fail "tc tbf in $P$i"
      done
    fi
    for n in $n_list; do
      for v in 0 1; do
        local maxb=$max_unshaped iters=10
        ((shaped)) && { maxb=$max_shaped; iters=3; }
        note "allreduce: $n hosts, link $( ((shaped)) && echo "$rate" || echo unshaped), Open MPI tcp ${variants[v]}"
        mpi_args "$n"
        # shellcheck disable=SC2086  # variant_args holds several words
        timeout -k 10 590 mpirun "${MPI_ARGS[@]}" ${variant_args[v]} "$bin_dir/resnet-bench" allreduce \
          --min-bytes 64K --max-bytes "$maxb" --factor 4 --iters $iters --warmup 1 --json >"$tmp/bench.json" 2>"$tmp/bench.err" ||
          { cat "$tmp/bench.err"; fail "resnet-bench allreduce on $n hosts"; }
        $PY - "$tmp/bench.json" "$n" "$( ((shaped)) && echo "$rate (tbf)" || echo "veth, unshaped")" "${variants[v]}" \
          "$( ((shaped)) && echo "$rate_mbs" || echo 0)" >>"$tmp/table.md" <<'EOF2'
import json, sys
path, n, link, variant, rate = sys.argv[1:6]
text = open(path).read()
d = json.loads(text[text.index("{"):])
for r in d["rows"]:
    size = r["bytes"]
    s = f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"
    frac = f"{r['busbw_gbs'] * 1000 / float(rate):.0%}" if float(rate) > 0 else "-"
    print(f"| {n} | {link} | {variant} | {s} | {r['time_us'] / 1000:.2f} | {r['algbw_gbs'] * 1000:.1f} | {r['busbw_gbs'] * 1000:.1f} | {frac} |")
EOF2
      done
    done
  done
  note "ring all-reduce (resnet-bench allreduce, fp32, segment 256 KiB) across network namespaces; link rate $rate = $rate_mbs MB/s each way"
  cat "$tmp/table.md"
  [[ -n ${RN_NETNS_BENCH_OUT:-} ]] && cp "$tmp/table.md" "$RN_NETNS_BENCH_OUT"
  return 0
}

case $test_name in
  multihost_train) test_multihost_train ;;
  rank_killed) test_fault rank_killed ;;
  link_down) test_fault link_down ;;
  bench) test_bench ;;
esac
exit 0
