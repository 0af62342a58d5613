#!/usr/bin/env bash
# run-tests.sh — newcomer command 2 (and what .ci/run calls): installs the
# dependencies, builds into build/, runs the whole ctest suite; with --sanitize also
# an ASan+UBSan build in build-asan/ and the suite again under the sanitizers.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"

usage() {
  cat >&2 <<'USAGE'
usage: ./run-tests.sh [--sanitize | --sanitize-only] [--no-deps] [--build-dir DIR] [-j N] [-L LABEL] [-LE LABEL]
                      [-R REGEX] [-E REGEX] [-- MORE CTEST ARGS]
  (no option)      build/ (RelWithDebInfo) and every test (labels unit, integration)
  --sanitize       then also build-asan/ (-DMBX_SANITIZE=ON) and the suite under ASan+UBSan
  --sanitize-only  only the sanitizer build and suite
  --no-deps        skip deploy/install-deps.sh
  --build-dir DIR  build into DIR and DIR-asan instead of build/ and build-asan/
  -j N             build and run tests N at a time (default: build -j$(nproc), tests 1 at a time)
  -L/-LE/-R/-E     passed to ctest (e.g. -L unit)
USAGE
  exit 2
}

NORMAL=1 SANITIZE=0 DEPS=1 JOBS='' BUILD=build CTEST_ARGS=()
while (($# > 0)); do
  case "$1" in
    --sanitize) SANITIZE=1 ;;
    --sanitize-only) SANITIZE=1; NORMAL=0 ;;
    --no-deps) DEPS=0 ;;
    -j) (($# >= 2)) || usage; JOBS=$2; shift ;;
    --build-dir) (($# >= 2)) || usage; BUILD=${2%/}; shift ;;
    -L | -LE | -R | -E) (($# >= 2)) || usage; CTEST_ARGS+=("$1" "$2"); shift ;;
    --) shift; CTEST_ARGS+=("$@"); break ;;
    -h | --help) usage ;;
    *) echo "run-tests: unknown argument '$1'" >&2; usage ;;
  esac
  shift
done
if [[ -n "$JOBS" && ! "$JOBS" =~ ^[1-9][0-9]*$ ]]; then echo "run-tests: -j needs a number" >&2; exit 2; fi

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'run-tests: %s\n' "$*" >&2; exit 1; }

if ((DEPS)); then
  step "installing dependencies (deploy/install-deps.sh)"
  deploy/install-deps.sh || die "dependency installation failed (see above)"
fi

# build DIR CMAKE-ARGS...: configure and build everything (tests included).
build() {
  local dir=$1
  shift
  step "building $dir/"
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null ||
    die "cmake configure of $dir/ failed: see the messages above"
  cmake --build "$dir" -j"${JOBS:-$(nproc)}" || die "build of $dir/ failed: see the compiler messages above"
}

# suite DIR: the ctest run; its own summary names each failed test.
FAILED=()
suite() {
  local dir=$1 start=$SECONDS
  step "testing $dir/ (ctest ${CTEST_ARGS[*]})"
  if ctest --test-dir "$dir" --output-on-failure --no-tests=error -j"${JOBS:-1}" "${CTEST_ARGS[@]}" </dev/null; then
    echo "suite $dir/: passed in $((SECONDS - start))s"
  else
    echo "suite $dir/: FAILED after $((SECONDS - start))s (details above; logs in $dir/Testing/Temporary/)"
    FAILED+=("$dir")
  fi
}

if ((NORMAL)); then
  build "$BUILD"
  suite "$BUILD"
fi
if ((SANITIZE)); then
  build "$BUILD-asan" -DMBX_SANITIZE=ON
  # Nodes under ASan start slower; leaks and UB end the process with an error.
  MBX_READY_TIMEOUT_S=${MBX_READY_TIMEOUT_S:-60} \
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    suite "$BUILD-asan"
fi

if ((${#FAILED[@]})); then die "tests failed in: ${FAILED[*]}"; fi
step "all tests passed"
