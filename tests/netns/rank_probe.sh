#!/bin/sh
# tests/netns/rank_probe.sh DIR COMMAND...: run by mpirun in place of
# COMMAND; writes where this rank runs (host name, network namespace, IPv4
# addresses) to DIR/rank-R.txt, then executes COMMAND in the same process.
dir=$1
shift
r=${OMPI_COMM_WORLD_RANK:-${PMIX_RANK:-unknown}}
{
  echo "rank=$r"
  echo "hostname=$(hostname)"
  echo "netns=$(readlink /proc/self/ns/net)"
  echo "addrs=$(ip -o -4 addr show scope global | awk '{print $4}' | tr '\n' ' ')"
} >"$dir/rank-$r.txt"
exec "$@"
