#!/usr/bin/env bash
# Benchmarks modelgate against nginx and HAProxy in front of the stub
# backend, and against the stub on its own, on loopback. See bench/README.md.
#
#   bash bench/run.sh            full run (about 25 minutes): Release build,
#                                6 rounds, report in bench/results/
#   bash bench/run.sh --quick    one short round, report in the build folder
#   bash bench/run.sh --smoke    the CTest smoke run: tiny counts, no build,
#                                fails when a contender drops requests
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$bench_dir/.." && pwd)"
source "$bench_dir/harness/common.sh"
source "$bench_dir/harness/contenders.sh"
source "$bench_dir/harness/scenarios.sh"
source "$bench_dir/harness/report.sh"

usage() {
  cat <<'EOF'
Usage: bash bench/run.sh [--quick | --smoke] [options]

  --quick            one round of short runs (about 2 minutes)
  --smoke            the CTest smoke run (under a minute): tiny counts, no
                     build, exits non-zero when any contender drops requests
  --build-dir DIR    use the binaries already built in DIR instead of
                     building Release into build-bench/ (also from
                     MODELGATE_BUILD_DIR)
  --out DIR          where the report goes (default: bench/results/ for a
                     full run, BUILD_DIR/bench-results/ otherwise)
  --rounds N         rounds of scenarios 1 and 2 (default 6)
  --duration S       seconds per measured wrk run (default 10)
  --keep-work        keep the folder with configs and logs
  -h, --help         print this help
EOF
}

# Sizes of a full run; --quick and --smoke shrink them.
mode=full
rounds=6
duration=10
warmup=2
levels="1 16 64 256"
stream_tokens=100
stream_count=20
cold_runs=10
cold_delay_ms=200
flood_connections=10000
flood_delay_ms=5000
flood_runs=3
idle_connections=1000
# Idle upstream connections each proxy keeps: at least the highest
# concurrency, so that no contender reconnects to the stub under load.
pool_size=1024

build_dir="${MODELGATE_BUILD_DIR:-}"
out_dir=""
keep_work=false
rounds_option=""
duration_option=""
while (($# > 0)); do
  case "$1" in
    --quick) mode=quick ;;
    --smoke) mode=smoke ;;
    --build-dir) build_dir="$2"; shift ;;
    --out) out_dir="$2"; shift ;;
    --rounds) rounds_option="$2"; shift ;;
    --duration) duration_option="$2"; shift ;;
    --keep-work) keep_work=true ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; fail "unknown option $1" ;;
  esac
  shift
done

case "$mode" in
  quick)
    rounds=1 duration=3 warmup=1 levels="1 64" stream_count=5 cold_runs=3
    flood_connections=2000 flood_delay_ms=2000 flood_runs=1
    ;;
  smoke)
    rounds=1 duration=1 warmup=1 levels="1 16" stream_tokens=20 stream_count=3 cold_runs=2
    cold_delay_ms=50 flood_connections=300 flood_delay_ms=1000 flood_runs=1 idle_connections=200
    ;;
esac
rounds="${rounds_option:-$rounds}"
duration="${duration_option:-$duration}"

# Tools from Debian packages.
find_tool() {
  command -v "$1" || { [[ -x "/usr/sbin/$1" ]] && printf '%s\n' "/usr/sbin/$1"; } || true
}
nginx_bin="$(find_tool nginx)"
haproxy_bin="$(find_tool haproxy)"
wrk_bin="$(find_tool wrk)"
gnuplot_bin="$(find_tool gnuplot)"
for tool in nginx haproxy wrk gnuplot curl; do
  if [[ -z "$(find_tool "$tool")" ]]; then
    fail "$tool is missing; install it with: apt-get install nginx-light haproxy wrk gnuplot-nox curl"
  fi
done

# Build Release unless binaries were given. g++ 12 reports a false
# -Wrestrict at -O3 inside std::string (GCC bug 105329), so warnings do not
# fail this build.
if [[ -z "$build_dir" ]]; then
  if [[ "$mode" == smoke ]]; then
    fail "--smoke needs --build-dir or MODELGATE_BUILD_DIR"
  fi
  build_dir="$repo_root/build-bench"
  say "building Release in $build_dir"
  cmake -S "$repo_root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DMODELGATE_WERROR=OFF >/dev/null
  ninja -C "$build_dir" -j"$(nproc)" modelgate modelgate-stub modelgate-bench-client >/dev/null
fi
build_dir="$(cd "$build_dir" && pwd)"
gateway_bin="$build_dir/gateway/modelgate"
stub_bin="$build_dir/bench/modelgate-stub"
client_bin="$build_dir/bench/modelgate-bench-client"
for binary in "$gateway_bin" "$stub_bin" "$client_bin"; do
  [[ -x "$binary" ]] || fail "$binary is missing; build the targets modelgate, modelgate-stub and modelgate-bench-client"
done
build_type="$(awk -F= '/^CMAKE_BUILD_TYPE:/ { print $2 }' "$build_dir/CMakeCache.txt" 2>/dev/null)"

if [[ -z "$out_dir" ]]; then
  if [[ "$mode" == full ]]; then
    out_dir="$bench_dir/results"
  else
    out_dir="$build_dir/bench-results"
  fi
fi
mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"

# Scenario 4 needs a descriptor per held client, and one per upstream
# connection once they are released; every process started from here
# inherits the limit.
ulimit -n "$(ulimit -Hn)"
open_files="$(ulimit -n)"
if ((open_files < 2 * flood_connections + 100)); then
  say "warning: ulimit -n is $open_files; $flood_connections held requests and their upstream connections need about $((2 * flood_connections + 100))"
fi
clock_ticks="$(getconf CLK_TCK)"

modelgate_version="$(git -C "$repo_root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$repo_root" status --porcelain -- gateway launcher routing config bench 2>/dev/null)" ]]; then
  modelgate_version+=" with uncommitted changes"
fi

work_dir="$(mktemp -d "${TMPDIR:-/tmp}/modelgate-bench.XXXXXX")"
raw_file="$work_dir/raw.tsv"
commands_file="$work_dir/commands.txt"
: >"$raw_file"

finish() {
  local status=$?
  stop_all
  if [[ "$keep_work" == true || $status -ne 0 ]]; then
    say "configs and logs are in $work_dir"
  else
    rm -rf "$work_dir"
  fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

run_date="$(date -u '+%Y-%m-%d %H:%M UTC')"
run_stamp="$(date -u '+%Y-%m-%d-%H%M')"
run_command="bash bench/run.sh"
if [[ "$mode" != full ]]; then
  run_command+=" --$mode"
fi

cat >"$commands_file" <<EOF
# build (skipped when --build-dir is given)
cmake -S . -B build-bench -G Ninja -DCMAKE_BUILD_TYPE=Release -DMODELGATE_WERROR=OFF
ninja -C build-bench modelgate modelgate-stub modelgate-bench-client
ulimit -n \$(ulimit -Hn)   # $open_files here

# contenders, all on 127.0.0.1 (ports picked free at run time)
modelgate --config gateway.yaml --log-level warn   # starts the stub on the first request
nginx -c nginx.conf -p WORK/nginx/ -g 'daemon off;'
haproxy -f haproxy.cfg -db

# scenario 1, per round, concurrency C in ($levels) and contender:
wrk -t1 -cC -d${warmup}s --timeout 5s --latency -s bench/wrk_post.lua http://127.0.0.1:PORT/v1/chat/completions   # warm-up
wrk -t1 -cC -d${duration}s --timeout 5s --latency -s bench/wrk_post.lua http://127.0.0.1:PORT/v1/chat/completions

# scenario 2, per round and contender:
modelgate-bench-client stream --port PORT --model bench --tokens $stream_tokens --count $stream_count

# scenario 3, $cold_runs times each:
modelgate-bench-client spawn-health --port FREE --model cold -- modelgate-stub --port FREE --model cold --startup-delay $cold_delay_ms --log-level warn
modelgate-bench-client request --port GATEWAY --model cold   # gateway-cold.yaml, --log-level info

# scenario 4, $flood_runs time(s), each with a fresh gateway (gateway-flood.yaml, --log-level info):
modelgate-bench-client flood --port GATEWAY --model flood --connections $flood_connections --connect-batch 1000

# scenario 5, per contender:
modelgate-bench-client idle --port PORT --model bench --connections $idle_connections
EOF

say "mode $mode: rounds $rounds, ${duration} s per run, results in $out_dir"

# Scenarios 5, 1 and 2 share one stub behind all three proxies. Memory goes
# first, before load has grown any pool.
start_steady_state
run_memory
run_throughput
run_streaming
stop_all

run_cold_start
run_flood

# Report.
raw_copy="$out_dir/$run_stamp.tsv"
medians_file="$work_dir/medians.tsv"
derive_results "$raw_file" >"$work_dir/all.tsv"
compute_medians "$work_dir/all.tsv" >"$medians_file"
cp "$raw_file" "$raw_copy"
write_chart "$work_dir/chart.dat" "$out_dir/$run_stamp-throughput.png"
write_report "$out_dir/$run_stamp.md" "$run_stamp-throughput.png"
say "report: $out_dir/$run_stamp.md"

if ((${#problems[@]} > 0)); then
  fail "${#problems[@]} problem(s) during the run; see the end of the report"
fi
