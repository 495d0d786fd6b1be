# Helpers of bench/run.sh: started processes, /proc readings, ports, raw
# results. Sourced, not run.

# PIDs of every process this run started, in start order. stop_all stops
# them in reverse order on exit.
started_pids=()

say() {
  printf '== %s\n' "$*" >&2
}

fail() {
  printf 'bench: %s\n' "$*" >&2
  exit 1
}

# start_process LOG COMMAND... starts COMMAND in the background with its
# output in LOG and sets `last_pid`.
start_process() {
  local log="$1"
  shift
  "$@" >"$log" 2>&1 &
  last_pid=$!
  started_pids+=("$last_pid")
}

# stop_process PID [GRACE_SECONDS] sends SIGTERM, then SIGKILL after the
# grace period, reaps the process and forgets its PID, which the kernel may
# give to another process afterwards.
stop_process() {
  local pid="$1" grace="${2:-10}" index
  for index in "${!started_pids[@]}"; do
    if [[ "${started_pids[index]}" == "$pid" ]]; then
      unset 'started_pids[index]'
    fi
  done
  started_pids=("${started_pids[@]}")
  if ! kill -0 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    if [[ "$(process_state "$pid")" == Z ]]; then
      break
    fi
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null && [[ "$(process_state "$pid")" != Z ]]; then
    say "process $pid did not stop within ${grace} s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

stop_all() {
  while ((${#started_pids[@]} > 0)); do
    stop_process "${started_pids[-1]}" 30
  done
}

# process_state PID prints the state letter of /proc/PID/stat (R, S, Z, ...).
process_state() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 0
  stat="${stat##*) }"
  printf '%s\n' "${stat%% *}"
}

# cpu_ticks PID... prints the user plus system time of the processes, in
# clock ticks (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() {
  local total=0 pid stat fields
  for pid in "$@"; do
    stat="$(cat "/proc/$pid/stat" 2>/dev/null)" || continue
    stat="${stat##*) }"
    read -ra fields <<<"$stat"
    total=$((total + fields[11] + fields[12]))
  done
  printf '%s\n' "$total"
}

# status_kb FIELD PID... prints the sum of a /proc/PID/status field in kB,
# such as VmRSS or VmHWM.
status_kb() {
  local field="$1" total=0 pid value
  shift
  for pid in "$@"; do
    value="$(awk -v field="$field:" '$1 == field { print $2 }' "/proc/$pid/status" 2>/dev/null)"
    total=$((total + ${value:-0}))
  done
  printf '%s\n' "$total"
}

# child_pids PID prints the PIDs whose parent is PID.
child_pids() {
  local parent="$1" path stat fields
  for path in /proc/[0-9]*/stat; do
    stat="$(cat "$path" 2>/dev/null)" || continue
    stat="${stat##*) }"
    read -ra fields <<<"$stat"
    if [[ "${fields[1]}" == "$parent" ]]; then
      path="${path#/proc/}"
      printf '%s\n' "${path%/stat}"
    fi
  done
}

# free_ports N prints N distinct TCP ports that were free on 127.0.0.1.
free_ports() {
  "$client_bin" free-port --count "$1"
}

# wait_for DESCRIPTION SECONDS COMMAND... runs COMMAND every 20 ms until it
# succeeds; fails the run after SECONDS.
wait_for() {
  local description="$1" seconds="$2"
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      fail "timed out after ${seconds} s waiting for $description"
    fi
    sleep 0.02
  done
}

# field KEY LINE prints the value of KEY in a "MODE key=value ..." line.
field() {
  local key="$1" line="$2" word
  for word in $line; do
    if [[ "$word" == "$key="* ]]; then
      printf '%s\n' "${word#*=}"
      return 0
    fi
  done
  printf '\n'
}

# record SCENARIO CONTENDER LEVEL ROUND METRIC VALUE appends one raw result.
record() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$raw_file"
}

# Problems that fail the run after the report is written: a contender that
# dropped or failed requests, a flood that lost responses.
problems=()
note_problem() {
  say "problem: $*"
  problems+=("$*")
}

# Findings about modelgate that the report lists without failing the run.
findings=()
note_finding() {
  say "finding: $*"
  findings+=("$*")
}
