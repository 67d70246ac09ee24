#!/usr/bin/env bash
# Singularity is not installable on the CI machine, so this checks the
# container definition's structure instead of building it: an NVIDIA CUDA +
# cuDNN development base image, dependencies from scripts/install-deps.sh
# only (one package list), a build, the test suite in %test and resnet-train
# as %runscript.
set -u
# usage: check_singularity_def.sh [--self-test] DEF [REPO_ROOT]  (root: where scripts/ and README.md are)
# --self-test: a copy of DEF with its own apt-get line must be rejected, naming the reason.
if [[ "${1:-}" == --self-test ]]; then
  shift
  bad=$(mktemp --suffix=.def)
  trap 'rm -f "$bad"' EXIT
  sed 's|^%post|%post\n    apt-get install -y libfoo-dev|' "$1" >"$bad"
  out=$(bash "$0" "$bad" "${2:-$(cd "$(dirname "$1")" && pwd)}" 2>&1)
  rc=$?
  if [[ $rc -eq 1 ]] && grep -q "installs packages itself" <<<"$out"; then
    echo "self-test ok: a second package list is rejected"
    exit 0
  fi
  echo "self-test FAILED (exit $rc): $out" >&2
  exit 1
fi
def=${1:?usage: check_singularity_def.sh Singularity.def [repo root]}
root=${2:-$(cd "$(dirname "$def")" && pwd)}
fail=0
err() { echo "Singularity.def: $*" >&2; fail=1; }

# The body of a %section (up to the next %section).
section() { awk -v s="%$1" '$1 ~ /^%/ {on = ($1 == s); next} on' "$def"; }

grep -qE '^Bootstrap:[[:space:]]*docker' "$def" || err "Bootstrap must be docker"
grep -qE '^From:[[:space:]]*nvidia/cuda:[^ ]*cudnn[^ ]*-devel-' "$def" ||
  err "From must be an NVIDIA CUDA + cuDNN development image (nvidia/cuda:*-cudnn*-devel-*)"
for s in files post environment runscript test; do
  grep -qE "^%$s\b" "$def" || err "missing %$s"
done
post=$(section post)
grep -q 'scripts/install-deps.sh' <<<"$post" || err "%post must run scripts/install-deps.sh"
# One list of packages: the definition installs nothing by itself.
if grep -qE '(apt-get|apt|yum|dnf|pip3?)[[:space:]]+install' "$def"; then
  err "installs packages itself; add them to scripts/install-deps.sh instead (one list)"
fi
grep -qE 'cmake[[:space:]]+--build' <<<"$post" || err "%post must build the project"
grep -q 'resnet-train' <<<"$post" || err "%post must install resnet-train"
grep -qE 'exec[[:space:]]+resnet-train' <<<"$(section runscript)" || err "%runscript must exec resnet-train"
grep -q 'ctest' <<<"$(section test)" || err "%test must run the test suite (ctest)"

# The install script it relies on must exist and install what CMake needs.
deps="$root/scripts/install-deps.sh"
[[ -x "$deps" ]] || err "scripts/install-deps.sh is missing or not executable"
list=$(sed -n '/^PACKAGES=(/,/^)/p' "$deps" | sed 's/#.*//')
for p in libopenmpi-dev libhdf5-dev libboost-program-options-dev libdnnl-dev libturbojpeg0-dev libgtest-dev \
         python3-torch; do
  grep -qw -- "$p" <<<"$list" || err "scripts/install-deps.sh does not install $p"
done
# README tells users how to build and run it.
grep -q 'singularity build' "$root/README.md" || err "README lacks the 'singularity build' instructions"
grep -q 'singularity exec --nv' "$root/README.md" || err "README lacks 'srun singularity exec --nv'"

((fail)) && exit 1
echo "Singularity.def: structure ok, packages from scripts/install-deps.sh"
