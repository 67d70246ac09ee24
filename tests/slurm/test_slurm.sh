#!/usr/bin/env bash
# tests/slurm/test_slurm.sh: launch/slurm/train.sbatch against a real Slurm.
#
#   tests/slurm/test_slurm.sh TEST [--bin PATH/resnet-train] [--keep]
#
# Starts a one-node Slurm on loopback (tests/slurm/cluster.sh: munged,
# slurmctld, slurmd, configuration in a temporary directory), submits the
# batch script with a tiny CPU training run (1 node x 2 tasks, 1 CPU each,
# ranks started by `srun --mpi=pmix`) and checks the outcome. TEST:
#   batch_job        the job completes: COMPLETED, no restart, a complete
#                    checkpoint at the final step, metrics up to it; then a
#                    job with bad input ends FAILED with exit 2, not requeued
#   preempt_requeue  mid-run `scancel --signal=USR1 --batch JOBID` (what
#                    `--signal=B:USR1@300` does ahead of the time limit): the
#                    ranks checkpoint, the script requeues the job, the second
#                    run resumes at that step and finishes the planned steps;
#                    no sample is trained twice in an epoch (RN_SAMPLE_LOG)
#   preempt_mpirun   the same with RN_LAUNCHER=mpirun (the documented
#                    alternative launcher)
#   time_limit       a 1-minute limit with Slurm's own SIGUSR1 warning ahead
#                    of it (--signal=B:USR1@20): the job requeues itself each
#                    time until the planned steps are done, never timing out
# Slurm holds a requeued job for about two minutes before it may start again;
# the test cuts that hold to 3 s (`scontrol update JobId=.. StartTime=now`)
# to save the time (RN_SLURM_TEST_WAIT_BEGIN=1 waits it out instead).
# Every wait is bounded; the daemons the test started are stopped by PID on
# exit. --keep (or RN_SLURM_TEST_KEEP=1) keeps the temporary directory.
# Needs root, slurm-wlm, munge, python3-h5py (scripts/install-deps.sh).
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tests/slurm/cluster.sh
source "$here/cluster.sh"

test_name=${1:-}
shift || true
bin=$repo/build/bin/resnet-train
keep=${RN_SLURM_TEST_KEEP:-0}
usage="usage: $0 batch_job|preempt_requeue|preempt_mpirun|time_limit [--bin resnet-train] [--keep]"
while (($#)); do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
case $test_name in
  batch_job | preempt_requeue | preempt_mpirun | time_limit) ;;
  *) echo "$usage" >&2; exit 2 ;;
esac

fail() {
  echo "FAIL (slurm.$test_name): $*" >&2
  exit 1
}

cluster_require || exit 1
[[ -x $bin ]] || fail "resnet-train not found at $bin (build it, or pass --bin)"
bin=$(realpath "$bin")  # the job runs in another directory
/usr/bin/python3 -c "import h5py" 2>/dev/null || fail "/usr/bin/python3 cannot import h5py: install python3-h5py (scripts/install-deps.sh)"

# Hermetic: nothing from a surrounding Slurm job or the caller's launch settings.
for v in $(compgen -e); do
  case $v in SLURM_* | SBATCH_* | SRUN_* | RN_OUTPUT_DIR | RN_LAUNCHER | RN_SRUN_MPI | RN_MAX_RESTARTS | RN_TRAIN_BIN | RN_SAMPLE_LOG) unset "$v" ;; esac
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rn-slurm-$test_name.XXXXXX")
on_exit() {
  local rc=$?
  if ((rc != 0)); then
    echo "----- diagnostics (slurm.$test_name, rc $rc)" >&2
    for j in "${CLUSTER_JOBS[@]}"; do scontrol show job "$j" >&2 2>/dev/null || true; done
    for f in "$tmp"/work/*.out "$tmp"/work/runs/*/train.log; do
      [[ -f $f ]] && { echo "----- $f (last 40 lines)" >&2; tail -n 40 "$f" >&2; }
    done
    cluster_dump_logs
  fi
  cluster_stop
  if ((rc == 0 && keep == 0)); then
    rm -rf "$tmp"
  else
    echo "kept $tmp" >&2
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

t0=$SECONDS
cluster_start "$tmp/cluster" || fail "the test cluster did not start"
cluster_log "cluster started in $((SECONDS - t0)) s"

work=$tmp/work
mkdir -p "$work"
cd "$work" || exit 1

# The tiny CPU run: 2 ranks x batch 8 = 16 images a step, on synthetic images
# (256 an epoch for the batch job; 1024 for the preemption tests, so that the
# stop most likely falls inside an epoch and the resume continues mid-epoch).
ranks=2
samples=256
[[ $test_name != batch_job ]] && samples=1024
steps_per_epoch=$((samples / (ranks * 8)))
tiny=(--model.arch=cifar-resnet8 --data.image_size=16 --data.synthetic_samples="$samples"
  --data.val_samples=64 --train.batch_size=8 --train.threads=1 --train.log_every=5
  --checkpoint.every_minutes=0)

job=""
sub_env=()   # VAR=VALUE for the next submit
sub_opts=()  # extra sbatch options for the next submit
sub_args=()  # extra resnet-train arguments for the next submit
submit() {  # submit NAME EPOCHS: sets job
  local name=$1 epochs=$2 out
  out=$(env "${sub_env[@]}" RN_TRAIN_BIN="$bin" RN_SAMPLE_LOG="$work/samples-$name" \
    sbatch --parsable --job-name="$name" --nodes=1 --ntasks-per-node=$ranks --gres=gpu:$ranks \
    --cpus-per-task=1 --time=00:15:00 "${sub_opts[@]}" "$repo/launch/slurm/train.sbatch" \
    "${tiny[@]}" --train.epochs="$epochs" "${sub_args[@]}") || fail "sbatch refused the job: $out"
  out=${out%%;*}
  [[ $out =~ ^[0-9]+$ ]] || fail "sbatch printed '$out', not a job id"
  CLUSTER_JOBS+=("$out")
  cluster_log "submitted $name as job $out ($epochs epochs = $((epochs * steps_per_epoch)) steps)${sub_opts[*]:+ with ${sub_opts[*]}}"
  job=$out
}

state_is() {  # state_is JOBID STATE...
  local s
  s=$(job_field "$1" JobState)
  shift
  local want
  for want in "$@"; do [[ $s == "$want" ]] && return 0; done
  return 1
}
job_ended() { state_is "$1" COMPLETED FAILED CANCELLED TIMEOUT NODE_FAIL PREEMPTED OUT_OF_MEMORY BOOT_FAIL DEADLINE; }

# Wait (at most LIMIT s) for JOB to end. Slurm holds a requeued job for
# ~120 s (PENDING, Reason=BeginTime); each such hold is cut to 3 s (slurmd
# refuses a start within a second or so of the kill: "Job credential
# revoked") unless RN_SLURM_TEST_WAIT_BEGIN=1.
wait_job_end() {  # wait_job_end JOBID LIMIT
  local j=$1 deadline=$((SECONDS + $2)) lifted=0 r
  while ! job_ended "$j"; do
    ((SECONDS < deadline)) || fail "job $j did not end in $2 s (state $(job_field "$j" JobState), reason $(job_field "$j" Reason))"
    r=$(job_field "$j" Restarts)
    if [[ ${RN_SLURM_TEST_WAIT_BEGIN:-0} != 1 && $r -gt $lifted ]] && state_is "$j" PENDING &&
      [[ $(job_field "$j" Reason) == BeginTime ]]; then
      cluster_log "job $j requeued (restart $r): cutting Slurm's requeue hold to 3 s"
      sleep 3
      scontrol update JobId="$j" StartTime=now || fail "scontrol update JobId=$j StartTime=now failed"
      lifted=$r
    fi
    sleep 0.5
  done
}

expect_completed() {  # expect_completed JOBID RESTARTS
  local j=$1 s rc restarts
  s=$(job_field "$j" JobState)
  rc=$(job_field "$j" ExitCode)
  restarts=$(job_field "$j" Restarts)
  [[ $s == COMPLETED && $rc == 0:0 ]] || fail "job $j ended $s with exit code $rc (want COMPLETED 0:0)"
  [[ $restarts == "$2" ]] || fail "job $j was restarted $restarts times (want $2)"
}

check_run() {  # check_run DIR ARGS...: python checks of checkpoints, metrics, sample logs
  /usr/bin/python3 "$here/check_run.py" "$@" || fail "run checks failed (above)"
}

# The job log and train.log of a job that was stopped and requeued N times:
# every run but the last got SIGUSR1, ended 75 and requeued; the last
# finished; each stop step K is followed by "resuming ... at step K";
# then the checkpoints, metrics and sample logs (check_run.py).
check_requeued_runs() {  # check_requeued_runs NAME N (uses job, total, epochs)
  local name=$1 n=$2 log run_dir stops k prev=0 c
  log=$work/$name-$job.out
  run_dir=$work/runs/$name-$job
  c=$(grep -c "received SIGUSR1" "$log")
  ((c == n)) || fail "$log: the batch shell reported SIGUSR1 $c times, want $n"
  c=$(grep -c "stopped early with status 75; .* requeueing job $job" "$log")
  ((c == n)) || fail "$log: $c runs ended with status 75 and requeued, want $n ($(grep -o 'status [0-9]*' "$log" | sort | uniq -c | tr '\n' ' '))"
  grep -q "restart $n .*finished: resnet-train exited 0 after $n restart" "$log" || fail "$log: the last run (restart $n) did not finish"
  mapfile -t stops < <(sed -n 's/.*received signal [0-9]* at step \([0-9]*\).*/\1/p' "$run_dir/train.log")
  ((${#stops[@]} == n)) || fail "train.log has ${#stops[@]} 'received signal ... at step K' lines, want $n"
  for k in "${stops[@]}"; do
    ((k > prev && k < total)) || fail "stop steps ${stops[*]} are not increasing inside 1..$((total - 1))"
    grep -q "resuming .* at step $k," "$run_dir/train.log" || fail "train.log lacks 'resuming ... at step $k'"
    prev=$k
  done
  grep -q "finished after $total steps" "$run_dir/train.log" || fail "train.log lacks 'finished after $total steps'"
  cluster_log "stopped at step(s) ${stops[*]}, resumed at each, finished at step $total"
  check_run "$run_dir" --total-steps "$total" --stop-step "${stops[n - 1]}" --ranks $ranks \
    --samples "$work/samples-$name" --samples-per-epoch $samples --epochs "$epochs"
}

case $test_name in
  batch_job)
    epochs=2
    total=$((epochs * steps_per_epoch))
    t1=$SECONDS
    submit rn-batch $epochs
    wait_until 180 "job $job to end" job_ended "$job" || fail "job $job did not end in 180 s (state $(job_field "$job" JobState))"
    cluster_log "job $job ended in $((SECONDS - t1)) s: $(job_field "$job" JobState) exit $(job_field "$job" ExitCode)"
    expect_completed "$job" 0
    run_dir=$work/runs/rn-batch-$job
    log=$work/rn-batch-$job.out
    [[ -d $run_dir ]] || fail "no output directory $run_dir (runs/\${SLURM_JOB_NAME}-\${SLURM_JOB_ID})"
    grep -q "finished: resnet-train exited 0" "$log" || fail "$log lacks the script's 'finished' line"
    grep -q "requeueing" "$log" && fail "a finished job requeued itself"
    grep -q "$ranks rank(s)" "$run_dir/train.log" || fail "train.log does not show $ranks ranks"
    check_run "$run_dir" --total-steps $total --ranks $ranks --samples "$work/samples-rn-batch" \
      --samples-per-epoch $samples --epochs $epochs
    # Bad input (exit 2) fails the job with that status and does not requeue.
    sub_args=(--data.prefetch=0)
    submit rn-bad 1
    wait_until 120 "job $job to end" job_ended "$job" || fail "job $job (bad input) did not end in 120 s"
    s=$(job_field "$job" JobState) rc=$(job_field "$job" ExitCode) r=$(job_field "$job" Restarts)
    cluster_log "job $job (--data.prefetch=0) ended: $s exit $rc restarts $r"
    [[ $s == FAILED && $rc == 2:0 && $r == 0 ]] || fail "job $job with bad input ended $s exit $rc restarts $r, want FAILED 2:0 without restart"
    grep -q "failed with status 2 .*not requeueing" "$work/rn-bad-$job.out" || fail "rn-bad-$job.out lacks the script's 'failed with status 2' line"
    ;;

  preempt_requeue | preempt_mpirun)
    epochs=${RN_SLURM_TEST_EPOCHS:-25}
    total=$((epochs * steps_per_epoch))
    name=rn-preempt
    if [[ $test_name == preempt_mpirun ]]; then
      sub_env=(RN_LAUNCHER=mpirun)
      name=rn-preempt-mpirun
    fi
    t1=$SECONDS
    submit $name "$epochs"
    run_dir=$work/runs/$name-$job
    metrics=$run_dir/metrics.jsonl
    # Signal once training is under way (a logged step >= 50) ...
    training() { [[ -f $metrics ]] && [[ $(tail -n 1 "$metrics" | sed -n 's/.*"step":\([0-9]*\).*/\1/p') -ge 50 ]] 2>/dev/null; }
    wait_until 180 "job $job to log step 50 in $metrics" training || fail "training did not get under way"
    state_is "$job" RUNNING || fail "job $job is $(job_field "$job" JobState), not RUNNING, before the signal"
    at=$(tail -n 1 "$metrics" | sed -n 's/.*"step":\([0-9]*\).*/\1/p')
    cluster_log "job $job at step $at of $total after $((SECONDS - t1)) s: scancel --signal=USR1 --batch $job"
    t_sig=$SECONDS
    scancel --signal=USR1 --batch "$job" || fail "scancel --signal=USR1 --batch $job failed"
    # ... it checkpoints and requeues itself ...
    requeued() { [[ $(job_field "$job" Restarts) -ge 1 ]] 2>/dev/null; }
    wait_until 120 "job $job to requeue (Restarts >= 1)" requeued || fail "job $job was not requeued after the signal"
    cluster_log "job $job requeued $((SECONDS - t_sig)) s after the signal: $(job_field "$job" JobState) $(job_field "$job" Reason)"
    # ... and the second run finishes.
    wait_job_end "$job" 420
    cluster_log "job $job ended $((SECONDS - t1)) s after submission: $(job_field "$job" JobState) exit $(job_field "$job" ExitCode) restarts $(job_field "$job" Restarts)"
    expect_completed "$job" 1
    check_requeued_runs $name 1
    ;;

  time_limit)
    # A 1-minute time limit and Slurm's own warning 20 s ahead of it
    # (--signal=B:USR1@20 on the command line; the script's line says @300,
    # longer than this limit). Slurm checks time limits every 30 s or so, so
    # the warning comes 10 to 40 s into each run (30 s in every run seen
    # here). The planned steps must take well over 40 s: 120 epochs once took
    # about 65 s on 2 idle cores but only 38 s since (stops at 85-90% of the
    # run), so 200 epochs (about 64 s now) make sure the job requeues itself
    # at least once, never reaching its time limit.
    epochs=${RN_SLURM_TEST_EPOCHS:-200}
    total=$((epochs * steps_per_epoch))
    name=rn-timelimit
    sub_opts=(--time=00:01:00 --signal=B:USR1@20)
    t1=$SECONDS
    submit $name "$epochs"
    wait_job_end "$job" 540
    restarts=$(job_field "$job" Restarts)
    cluster_log "job $job ended $((SECONDS - t1)) s after submission: $(job_field "$job" JobState) exit $(job_field "$job" ExitCode) restarts $restarts"
    ((restarts >= 1)) || fail "job $job finished without a restart: the run was shorter than the time limit's warning; raise RN_SLURM_TEST_EPOCHS"
    expect_completed "$job" "$restarts"
    check_requeued_runs $name "$restarts"
    ;;
esac
cluster_log "PASS slurm.$test_name in $((SECONDS - t0)) s"
