#!/bin/sh
# tests/netns/netns_agent.sh: an Open MPI rsh agent for "hosts" that are
# network namespaces on this machine (tests/netns/multihost_test.sh).
#
#   mpirun --mca plm rsh --mca plm_rsh_agent /path/netns_agent.sh ...
#
# mpirun calls it as ssh would be called: `netns_agent.sh [-options] HOST
# COMMAND...` (the command being the orted start-up line). HOST is a
# namespace name, or an address listed in RN_NETNS_MAP ("ADDR=NS ADDR=NS",
# exported to mpirun, which passes its environment to the agent). The command
# runs like ssh runs it, through `sh -c`, inside the namespace and in a UTS
# namespace of its own whose hostname is the namespace name, so every rank
# sees its own host name. RN_NETNS_AGENT_LOG, when set, names a file that
# logs each call. Exits 255 (ssh's "could not connect") for an unknown host.
while [ $# -gt 0 ]; do
  case $1 in
    -*) shift ;;  # ssh-style options: none apply to a namespace
    *) break ;;
  esac
done
if [ $# -lt 2 ]; then
  echo "netns_agent: usage: netns_agent.sh HOST COMMAND..." >&2
  exit 255
fi
host=$1
shift
ns=
for pair in ${RN_NETNS_MAP:-}; do
  case $pair in
    "$host="*) ns=${pair#*=} ;;
  esac
done
if [ -z "$ns" ] && [ -e "/run/netns/$host" ]; then ns=$host; fi
if [ -z "$ns" ] || [ ! -e "/run/netns/$ns" ]; then
  echo "netns_agent: no network namespace for host '$host' (RN_NETNS_MAP='${RN_NETNS_MAP:-}')" >&2
  exit 255
fi
if [ -n "${RN_NETNS_AGENT_LOG:-}" ]; then
  echo "$(date +%T) host $host -> netns $ns: $*" >>"$RN_NETNS_AGENT_LOG"
fi
exec ip netns exec "$ns" unshare --uts sh -c "hostname '$ns' && $*"
