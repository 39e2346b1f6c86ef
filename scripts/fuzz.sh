#!/usr/bin/env bash
# Coverage-guided fuzzing on the stable toolchain (libFuzzer through libfuzzer-sys; see
# docs/fuzzing.md for why, and for what to do with a finding).
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60 s, every target)
#
# Builds fuzz/ once with coverage instrumentation, replays every input under
# fuzz/regressions/<target>/ (past findings: each must pass), then runs each target for
# the given time from fuzz/seeds/<target>/ plus the corpus it grew before
# (fuzz/corpus/<target>/, not in git). A crash, hang (over 10 s) or out-of-memory input is
# written to fuzz/artifacts/<target>/; the script goes on with the other targets and exits
# 1 at the end if anything was found. Debug build (opt-level 1, debug assertions on).
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
[[ "$secs" =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2; }
shift || true
all=()
for f in fuzz/fuzz_targets/*.rs; do all+=("$(basename "$f" .rs)"); done
targets=("${@:-${all[@]}}")
for t in "${targets[@]}"; do
  [ -f "fuzz/fuzz_targets/$t.rs" ] || { echo "unknown target $t (have: ${all[*]})" >&2; exit 2; }
done

# libfuzzer-sys compiles libFuzzer (C++) in its build script.
if ! command -v c++ >/dev/null 2>&1; then
  echo "installing: g++"
  sudo_=(); [ "$(id -u)" = 0 ] || sudo_=(sudo)
  "${sudo_[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_[@]}" apt-get install -y -qq --no-install-recommends g++ >/dev/null
fi

# Its own target dir: the instrumentation flags below must not reach the workspace's builds.
export CARGO_TARGET_DIR="${AVIS_FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR-fuzz}}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/fuzz/target}"
host="$(rustc -vV | sed -n 's/^host: //p')"
# What `cargo fuzz build -s none` passes, minus its nightly-only -Z flags: libFuzzer's
# coverage feedback (inline 8-bit counters, PC table, comparison tracing, stack depth),
# and cfg(fuzzing). With an explicit --target they reach neither build scripts nor
# proc-macros. No sanitizer: the code is safe Rust apart from agent-mib's mapping.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing"
bins=()
for t in "${targets[@]}"; do bins+=(--bin "$t"); done
# The root lock file, so every dependency shared with the workspace resolves to the version
# the workspace uses (only libfuzzer-sys and its few own are added); made afresh each run,
# so a dependency added to a library crate never leaves fuzz/ with a stale lock.
cp Cargo.lock fuzz/Cargo.lock
(cd fuzz && cargo build --quiet --target "$host" "${bins[@]}")
bindir="$CARGO_TARGET_DIR/$host/debug"

# Spool and scoreboard files of the targets go here, and go away at the end.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
export TMPDIR="$scratch"

found=()
for t in "${targets[@]}"; do
  regressions=(fuzz/regressions/"$t"/*)
  if [ -e "${regressions[0]}" ]; then
    if ! "$bindir/$t" "${regressions[@]}" >"$scratch/$t.replay.log" 2>&1; then
      echo "$t: a regression input fails again:" >&2
      grep -E -A1 "^Running: |panicked at" "$scratch/$t.replay.log" >&2 || tail -n 30 "$scratch/$t.replay.log" >&2
      found+=("$t (regression)")
    fi
  fi
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  seeds=(); [ -d "fuzz/seeds/$t" ] && seeds=("fuzz/seeds/$t")
  log="fuzz/artifacts/$t/last-run.log"
  if "$bindir/$t" "fuzz/corpus/$t" "${seeds[@]}" \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
    cov="$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 || true)"
    echo "$t: ${execs:-?} runs in ${secs} s, ${cov:-cov: ?}, no finding"
  else
    echo "$t: FINDING (see $log):" >&2
    grep -E -m 5 "panicked at|ERROR: libFuzzer|SUMMARY|Test unit written" "$log" >&2 || tail -n 20 "$log" >&2
    found+=("$t")
  fi
done

if ((${#found[@]})); then
  echo "fuzzing found problems in: ${found[*]} (inputs in fuzz/artifacts/; docs/fuzzing.md says what next)" >&2
  exit 1
fi
