# The scenarios of bench/run.sh. Each one appends its raw numbers with
# `record`; report.sh turns them into medians and ratios. Sourced, not run.

# rotated ROUND NAME... prints the names rotated left by ROUND, so that no
# contender always runs first or right after another one.
rotated() {
  local round="$1"
  shift
  local names=("$@") count=$# index
  for ((index = 0; index < count; index++)); do
    printf '%s\n' "${names[(index + round) % count]}"
  done
}

# Starts the stub through a gateway with an idle_timeout of 0, so that it
# keeps running, then nginx and HAProxy in front of the same stub.
start_steady_state() {
  local record_file="$work_dir/stub.record"
  rm -f "$record_file"
  gateway_port="$(free_ports 1)"
  write_gateway_config "$work_dir/gateway.yaml" "$gateway_port" 1000 "  - name: bench
    backend: stub
    backend_parameters: ['--token-interval', '1', '--event-timestamps',
                         '--record', '$record_file', '--log-level', 'warn']
    idle_timeout: 0"
  start_gateway gateway "$work_dir/gateway.yaml" warn "$gateway_port"
  gateway_pid="$last_pid"

  # The first request starts the stub; its record line gives its PID and port.
  "$client_bin" request --port "$gateway_port" --model bench >/dev/null ||
    fail "the warm-up request through modelgate failed; see $work_dir/gateway.log"
  read -r stub_pid stub_port <"$record_file"
  say "stub backend: pid $stub_pid, port $stub_port; modelgate: port $gateway_port"

  start_proxies "$stub_port"
  say "nginx: port $nginx_port; HAProxy: port $haproxy_port"
}

# Scenario 5: memory when idle, and per 1,000 idle keep-alive connections.
run_memory() {
  say "scenario 5: memory, idle and with $idle_connections idle connections"
  local contender pids before after line
  for contender in direct modelgate nginx haproxy; do
    pids=($(contender_pids "$contender"))
    before="$(status_kb VmRSS "${pids[@]}")"
    record memory "$contender" - 1 rss_idle_kb "$before"

    start_process "$work_dir/idle-$contender.out" "$client_bin" idle \
      --port "$(contender_port "$contender")" --model bench \
      --connections "$idle_connections" --timeout-ms 60000
    local client_pid="$last_pid"
    wait_for "$idle_connections idle connections to $contender" 60 \
      grep -q '^IDLE' "$work_dir/idle-$contender.out"
    line="$(grep '^IDLE' "$work_dir/idle-$contender.out")"
    after="$(status_kb VmRSS "${pids[@]}")"
    stop_process "$client_pid" 10

    if [[ "$(field ok "$line")" != "$idle_connections" ]]; then
      note_problem "idle connections to $contender: $line"
    fi
    record memory "$contender" - 1 rss_idle_connections_kb "$after"
    record memory "$contender" - 1 rss_per_1000_connections_kb \
      "$(((after - before) * 1000 / idle_connections))"
  done
}

# run_wrk CONTENDER CONCURRENCY SECONDS prints wrk's result line.
run_wrk() {
  local contender="$1" connections="$2" seconds="$3"
  "$wrk_bin" -t1 -c"$connections" -d"${seconds}s" --timeout 5s --latency \
    -s "$bench_dir/wrk_post.lua" \
    "http://127.0.0.1:$(contender_port "$contender")/v1/chat/completions" |
    grep '^WRK' || true
}

# Scenario 1: non-streamed chat completions over keep-alive connections.
run_throughput() {
  say "scenario 1: throughput and latency, concurrency $levels, $rounds round(s) of ${duration} s"
  local round level contender pids ticks_before ticks_after line requests
  for ((round = 1; round <= rounds; round++)); do
    for level in $levels; do
      for contender in $(rotated "$round" direct modelgate nginx haproxy); do
        pids=($(contender_pids "$contender"))
        run_wrk "$contender" "$level" "$warmup" >/dev/null
        ticks_before="$(cpu_ticks "${pids[@]}")"
        line="$(run_wrk "$contender" "$level" "$duration")"
        ticks_after="$(cpu_ticks "${pids[@]}")"

        requests="$(field requests "$line")"
        if [[ -z "$requests" || "$requests" == 0 ]]; then
          note_problem "wrk against $contender at $level connections: no requests ($line)"
          continue
        fi
        if [[ "$(field socket_errors "$line")" != 0 || "$(field non_2xx "$line")" != 0 ]]; then
          note_problem "wrk against $contender at $level connections: errors ($line)"
        fi
        record throughput "$contender" "$level" "$round" rps "$(field rps "$line")"
        record throughput "$contender" "$level" "$round" p50_us "$(field p50_us "$line")"
        record throughput "$contender" "$level" "$round" p99_us "$(field p99_us "$line")"
        record throughput "$contender" "$level" "$round" cpu_us_per_request \
          "$(awk -v ticks=$((ticks_after - ticks_before)) -v hz="$clock_ticks" -v n="$requests" \
            'BEGIN { printf "%.2f", ticks / hz * 1e6 / n }')"
        record throughput "$contender" "$level" "$round" errors \
          "$(($(field socket_errors "$line") + $(field non_2xx "$line")))"
        say "round $round c=$level $contender: $line"
      done
    done
  done
}

# Scenario 2: streamed chat completions of $stream_tokens events, 1 ms apart.
run_streaming() {
  say "scenario 2: streaming, $stream_count streams of $stream_tokens events per contender and round"
  local round contender line
  for ((round = 1; round <= rounds; round++)); do
    for contender in $(rotated "$round" direct modelgate nginx haproxy-no-delay haproxy); do
      line="$("$client_bin" stream --port "$(contender_port "$contender")" --model bench \
        --tokens "$stream_tokens" --count "$stream_count" --timeout-ms 60000)" ||
        note_problem "streams through $contender failed: $line"
      for metric in first_event_us gap_us delivery_us delivery_p99_us; do
        record streaming "$contender" "$stream_tokens" "$round" "$metric" "$(field "$metric" "$line")"
      done
      say "round $round $contender: $line"
    done
  done
}

# Scenario 3: cold starts. Each round times the stub started on its own
# (spawn to healthy), then a request that cold-starts it through a gateway.
run_cold_start() {
  say "scenario 3: cold start, $cold_runs runs, stub --startup-delay $cold_delay_ms"
  local port config log round line direct_port healthy_lines healthy_ms gateway_pid_cold
  port="$(free_ports 1)"
  config="$work_dir/gateway-cold.yaml"
  log="$work_dir/gateway-cold.log"
  write_gateway_config "$config" "$port" 1000 "  - name: cold
    backend: stub
    backend_parameters: ['--startup-delay', '$cold_delay_ms', '--log-level', 'warn']
    idle_timeout: 300ms"
  start_gateway gateway-cold "$config" info "$port"
  gateway_pid_cold="$last_pid"

  for ((round = 1; round <= cold_runs; round++)); do
    # The stub on its own, polled every 200 us.
    direct_port="$(free_ports 1)"
    line="$("$client_bin" spawn-health --port "$direct_port" --model cold --timeout-ms 30000 \
      -- "$stub_bin" --port "$direct_port" --model cold --startup-delay "$cold_delay_ms" \
      --log-level warn)" || note_problem "the stub on its own failed to start: $line"
    record cold_start direct - "$round" healthy_us "$(field healthy_us "$line")"
    record cold_start direct - "$round" first_byte_us "$(field first_byte_us "$line")"

    # Through the gateway, once the previous instance has stopped.
    wait_for "instance of 'cold' to stop" 30 cold_deployment_stopped "$port"
    healthy_lines="$(grep -c "of 'cold' healthy after" "$log" || true)"
    line="$("$client_bin" request --port "$port" --model cold --timeout-ms 30000)" ||
      note_problem "the cold-start request through modelgate failed: $line"
    wait_for "the healthy line in $log" 10 healthy_line_after "$log" "$healthy_lines"
    healthy_ms="$(grep "of 'cold' healthy after" "$log" | tail -1 |
      sed -E 's/.*healthy after ([0-9]+) ms.*/\1/')"
    record cold_start modelgate - "$round" first_byte_us "$(field first_byte_us "$line")"
    record cold_start modelgate - "$round" healthy_after_ms "$healthy_ms"
    say "cold start $round: $line, gateway healthy after $healthy_ms ms"
  done
  stop_process "$gateway_pid_cold" 30
}

cold_deployment_stopped() {
  curl -sf "http://127.0.0.1:$1/v1/models/cold" | grep -q '"state":"stopped"'
}

healthy_line_after() {
  (($(grep -c "of 'cold' healthy after" "$1" || true) > $2))
}

# Scenario 4: $flood_connections requests arrive while one cold start runs.
run_flood() {
  say "scenario 4: $flood_connections concurrent requests during one cold start, $flood_runs run(s)"
  local run port config log gateway_pid_flood line hwm released starts
  for ((run = 1; run <= flood_runs; run++)); do
    port="$(free_ports 1)"
    config="$work_dir/gateway-flood.yaml"
    log="$work_dir/gateway-flood-$run.log"
    write_gateway_config "$config" "$port" "$flood_connections" "  - name: flood
    backend: stub
    backend_parameters: ['--startup-delay', '$flood_delay_ms', '--log-level', 'warn']
    idle_timeout: 0"
    start_gateway "gateway-flood-$run" "$config" info "$port"
    gateway_pid_flood="$last_pid"

    line="$("$client_bin" flood --port "$port" --model flood \
      --connections "$flood_connections" --connect-batch 1000 --timeout-ms 120000 \
      2>"$work_dir/flood-$run.err")" || true
    hwm="$(status_kb VmHWM "$gateway_pid_flood")"
    released="$(grep -m1 "of 'flood' healthy after" "$log" |
      sed -E 's/.*, ([0-9]+) held request.*/\1/')"
    starts="$(grep -c "of 'flood' starting on" "$log" || true)"
    stop_process "$gateway_pid_flood" 30

    # One cold start is expected: the deployment has one replica.
    # NOTE: modelgate starts several instances when many requests arrive
    # before the first start registers. This is listed as a finding, not a
    # failure, until the launcher counts a start as soon as it decides it.
    if [[ "$starts" != 1 ]]; then
      note_finding "flood run $run: the gateway started $starts instances of 'flood' instead of 1"
    fi

    if [[ "$(field ok "$line")" != "$flood_connections" ]]; then
      note_problem "flood run $run: $line (errors in $work_dir/flood-$run.err)"
    fi
    for metric in ok other_status failed all_sent_ms last_answer_ms; do
      record flood modelgate "$flood_connections" "$run" "$metric" "$(field "$metric" "$line")"
    done
    record flood modelgate "$flood_connections" "$run" released "${released:-0}"
    record flood modelgate "$flood_connections" "$run" instances_started "$starts"
    record flood modelgate "$flood_connections" "$run" vm_hwm_kb "$hwm"
    say "flood run $run: $line released=${released:-0} instances=$starts VmHWM=${hwm} kB"
  done
}
