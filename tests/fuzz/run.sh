#!/bin/sh
# Runs every libFuzzer target for SECONDS seconds, one after the other.
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]
#
# BUILD_DIR is a tree configured with CC=clang -DMBGW_FUZZ=ON in which the
# `fuzz_targets` target has been built. Each target starts from a fresh
# copy of its committed seed corpus (tests/fuzz/corpus/TARGET), made in
# BUILD_DIR/fuzz-run/TARGET/ so that the repository is never written to;
# what the run learns, its log and any crashing input stay there.
# SECONDS = 0 only replays the seed corpus (a regression check).
#
# Prints one line per target and a final "N passed, N failed"; exits
# non-zero if any target crashed, leaked, timed out or broke an invariant.
# The environment is passed on, e.g. MBGW_FUZZ_SKIP (see README.md).
set -u

if [ $# -lt 2 ]; then
	echo "usage: $0 BUILD_DIR SECONDS [TARGET...]" >&2
	exit 2
fi
build=$1
secs=$2
shift 2
case $secs in
	''|*[!0-9]*) echo "$0: SECONDS must be a whole number, not '$secs'" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -gt 0 ]; then
	targets=$*
elif [ -f "$build/tests/fuzz/targets.txt" ]; then
	targets=$(cat "$build/tests/fuzz/targets.txt")  # written by tests/fuzz/CMakeLists.txt
else
	targets="fuzz_http_request fuzz_ws_frame fuzz_ws_reader fuzz_msg fuzz_conf"
fi
work=$build/fuzz-run

# Stack traces for UBSan too; leaks are on by default under libFuzzer.
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export UBSAN_OPTIONS

# Longest input per target: room for the limits each parser enforces
# (a 2 KiB head limit plus what follows it, a 4 KiB conf line, frames of
# every length encoding) while keeping executions fast.
max_len() {
	case $1 in
		fuzz_conf) echo 8192 ;;
		*) echo 4096 ;;
	esac
}

# One field from libFuzzer's last status line, e.g. "cov: 380".
field() {
	grep ' cov: ' "$2" | tail -n 1 | sed -n "s|.* $1: \([0-9][0-9]*\).*|\1|p"
}

passed=0
failed=0
for t in $targets; do
	bin=$build/tests/fuzz/$t
	dir=$work/$t
	if [ ! -x "$bin" ]; then
		echo "FAIL $t: $bin is missing (cmake --build $build --target fuzz_targets)"
		failed=$((failed + 1))
		continue
	fi
	rm -rf "$dir"
	mkdir -p "$dir/corpus" "$dir/artifacts"
	if [ -d "$here/corpus/$t" ]; then
		cp "$here/corpus/$t/"* "$dir/corpus/" 2>/dev/null
	fi
	log=$dir/log
	if [ "$secs" -eq 0 ]; then
		# Replay only: each seed file once.
		set -- "$dir/corpus/"*
		[ -e "$1" ] || set --
		"$bin" -artifact_prefix="$dir/artifacts/" "$@" >"$log" 2>&1
	else
		dict=
		[ -f "$here/$t.dict" ] && dict=-dict=$here/$t.dict
		"$bin" -max_total_time="$secs" -max_len="$(max_len "$t")" $dict \
			-use_value_profile=1 -timeout=25 -rss_limit_mb=2048 \
			-print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
			"$dir/corpus" >"$log" 2>&1
	fi
	rc=$?
	if [ $rc -eq 0 ]; then
		if [ "$secs" -eq 0 ]; then
			echo "PASS $t: $(ls "$dir/corpus" | wc -l) seed inputs replayed"
		else
			execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
			echo "PASS $t: ${execs:-?} execs, cov $(field cov "$log"), ft $(field ft "$log")," \
			     "corpus $(field corp "$log") inputs, $(field exec/s "$log") exec/s"
		fi
		passed=$((passed + 1))
	else
		why=$(grep -m1 -E 'invariant violated|^SUMMARY|ERROR: libFuzzer|ERROR: (Address|Leak)Sanitizer|runtime error' "$log")
		input=$(ls "$dir/artifacts/" 2>/dev/null | head -n 1)
		echo "FAIL $t: ${why:-exit status $rc}"
		grep -A1 -m1 'invariant violated' "$log" | tail -n 1 | sed 's/^ */     /'
		if [ -n "$input" ]; then
			echo "     input: $dir/artifacts/$input"
			echo "     replay: $bin $dir/artifacts/$input"
		fi
		echo "     log: $log"
		failed=$((failed + 1))
	fi
done
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
