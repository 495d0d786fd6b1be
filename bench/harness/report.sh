# Turns the raw results of bench/run.sh into medians, ratios, a Markdown
# report and a chart. Sourced, not run. Uses POSIX awk features only, so
# that Debian's default mawk runs it.

# derive_results RAW prints the raw rows followed by per-round derived
# rows: latency added over direct, ratios of modelgate against nginx and
# HAProxy, streaming delay added over direct, cold-start overhead.
derive_results() {
  awk -F '\t' -v OFS='\t' '
    { value[$1 SUBSEP $2 SUBSEP $3 SUBSEP $4 SUBSEP $5] = $6; print }

    function has(s, c, l, r, m) { return (s SUBSEP c SUBSEP l SUBSEP r SUBSEP m) in value }
    function get(s, c, l, r, m) { return value[s SUBSEP c SUBSEP l SUBSEP r SUBSEP m] }

    END {
      for (key in value) {
        split(key, part, SUBSEP)
        s = part[1]; c = part[2]; l = part[3]; r = part[4]; m = part[5]; v = value[key]

        if (s == "throughput" && c != "direct" && (m == "p50_us" || m == "p99_us") &&
            has(s, "direct", l, r, m)) {
          print s, c, l, r, "added_" m, v - get(s, "direct", l, r, m)
        }
        if (s == "throughput" && c == "modelgate" &&
            (m == "rps" || m == "cpu_us_per_request")) {
          if (has(s, "nginx", l, r, m) && get(s, "nginx", l, r, m) > 0) {
            print s, c, l, r, m "_vs_nginx", v / get(s, "nginx", l, r, m)
          }
          if (has(s, "haproxy", l, r, m) && get(s, "haproxy", l, r, m) > 0) {
            print s, c, l, r, m "_vs_haproxy", v / get(s, "haproxy", l, r, m)
          }
          if (m == "rps" && has(s, "nginx", l, r, m) && has(s, "haproxy", l, r, m)) {
            faster = get(s, "nginx", l, r, m)
            if (get(s, "haproxy", l, r, m) > faster) { faster = get(s, "haproxy", l, r, m) }
            if (faster > 0) { print s, c, l, r, "rps_vs_faster", v / faster }
          }
        }
        if (s == "streaming" && c != "direct" && has(s, "direct", l, r, m) && v != "") {
          print s, c, l, r, "added_" m, v - get(s, "direct", l, r, m)
        }
        if (s == "cold_start" && c == "modelgate" && m == "first_byte_us") {
          if (has(s, "direct", l, r, "healthy_us")) {
            print s, c, l, r, "overhead_us", v - get(s, "direct", l, r, "healthy_us")
          }
          if (has(s, c, l, r, "healthy_after_ms")) {
            print s, c, l, r, "after_healthy_us", v - 1000 * get(s, c, l, r, "healthy_after_ms")
          }
        }
      }
    }' "$1"
}

# compute_medians ROWS prints "scenario contender level metric median count
# min max" for every group of rounds.
compute_medians() {
  awk -F '\t' -v OFS='\t' '
    $6 != "" && $6 != "-" {
      key = $1 SUBSEP $2 SUBSEP $3 SUBSEP $5
      n = ++count[key]
      values[key, n] = $6 + 0
    }
    END {
      for (key in count) {
        n = count[key]
        for (i = 1; i <= n; i++) { sorted[i] = values[key, i] }
        for (i = 2; i <= n; i++) {
          x = sorted[i]
          for (j = i - 1; j >= 1 && sorted[j] > x; j--) { sorted[j + 1] = sorted[j] }
          sorted[j + 1] = x
        }
        median = (n % 2) ? sorted[(n + 1) / 2] : (sorted[n / 2] + sorted[n / 2 + 1]) / 2
        split(key, part, SUBSEP)
        print part[1], part[2], part[3], part[4], median, n, sorted[1], sorted[n]
      }
    }' "$1"
}

# med SCENARIO CONTENDER LEVEL METRIC [FORMAT] prints a median from
# $medians_file, or "n/a".
med() {
  statistic 5 "$@"
}

# worst_low and worst_high take the arguments of med and print the lowest or
# the highest value over the rounds, for targets that every run must meet.
worst_low() {
  statistic 7 "$@"
}

worst_high() {
  statistic 8 "$@"
}

statistic() {
  awk -F '\t' -v column="$1" -v s="$2" -v c="$3" -v l="$4" -v m="$5" -v format="${6:-%.1f}" '
    $1 == s && $2 == c && $3 == l && $4 == m { printf format "\n", $column; found = 1 }
    END { if (!found) { print "n/a" } }' "$medians_file"
}

# verdict VALUE OPERATOR LIMIT prints "met" or "missed" (or "n/a").
verdict() {
  awk -v value="$1" -v op="$2" -v limit="$3" 'BEGIN {
    if (value == "n/a" || value == "") { print "n/a"; exit }
    ok = (op == "<=") ? (value + 0 <= limit + 0) : (value + 0 >= limit + 0)
    print ok ? "met" : "**missed**"
  }'
}

write_chart() {
  local data="$1" png="$2" level
  : >"$data"
  for level in $levels; do
    printf '%s %s %s %s %s %s %s %s %s\n' "$level" \
      "$(med throughput direct "$level" rps %.0f)" "$(med throughput modelgate "$level" rps %.0f)" \
      "$(med throughput nginx "$level" rps %.0f)" "$(med throughput haproxy "$level" rps %.0f)" \
      "$(med throughput direct "$level" cpu_us_per_request %.2f)" \
      "$(med throughput modelgate "$level" cpu_us_per_request %.2f)" \
      "$(med throughput nginx "$level" cpu_us_per_request %.2f)" \
      "$(med throughput haproxy "$level" cpu_us_per_request %.2f)" >>"$data"
  done
  "$gnuplot_bin" <<EOF
set terminal pngcairo size 1100,460 font "sans,10"
set output "$png"
set datafile missing "n/a"
set multiplot layout 1,2 title "Non-streamed chat completions, keep-alive, 1 worker thread each (medians of $rounds round(s))"
set logscale x 2
set xlabel "concurrent connections"
set grid
set key top left
set ylabel "requests per second"
set yrange [0:*]
plot "$data" using 1:2 with linespoints lc rgb "#777777" title "direct (stub)", \
     "" using 1:3 with linespoints lc rgb "#1f77b4" title "modelgate", \
     "" using 1:4 with linespoints lc rgb "#2ca02c" title "nginx", \
     "" using 1:5 with linespoints lc rgb "#d62728" title "HAProxy"
set ylabel "CPU time of the proxy per request (µs)"
set key top right
plot "$data" using 1:7 with linespoints lc rgb "#1f77b4" title "modelgate", \
     "" using 1:8 with linespoints lc rgb "#2ca02c" title "nginx", \
     "" using 1:9 with linespoints lc rgb "#d62728" title "HAProxy"
unset multiplot
EOF
}

# write_report MARKDOWN PNG_NAME writes the dated report.
write_report() {
  local out="$1" png_name="$2" level contender
  local cpu_model kernel
  cpu_model="$(awk -F ': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
  kernel="$(uname -r)"

  {
    printf '# modelgate against nginx and HAProxy: %s\n\n' "$run_date"
    printf 'Made by `%s`. Raw numbers: [%s](%s).\n\n' "$run_command" "$(basename "$raw_copy")" \
      "$(basename "$raw_copy")"
    printf '## Machine and versions\n\n'
    printf '| | |\n|---|---|\n'
    printf '| CPUs (`nproc`) | %s |\n' "$(nproc)"
    printf '| CPU model | %s |\n' "$cpu_model"
    printf '| kernel | %s |\n' "$kernel"
    printf '| memory | %s MiB |\n' "$(awk '/^MemTotal/ { printf "%d", $2 / 1024 }' /proc/meminfo)"
    printf '| modelgate | commit %s |\n' "$modelgate_version"
    printf '| build | %s, %s |\n' "$build_type" "$(g++ --version | head -1)"
    printf '| nginx | %s |\n' "$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //')"
    printf '| HAProxy | %s |\n' "$("$haproxy_bin" -v | head -1 | sed 's/ - https.*//')"
    printf '| wrk | %s |\n' "$("$wrk_bin" -v 2>&1 | head -1 | sed 's/ Copyright.*//')"
    printf '| open files (`ulimit -n`) | %s |\n\n' "$open_files"

    printf 'Every contender runs one worker thread on loopback in front of the same\n'
    printf 'stub backend process (one thread), which modelgate started as its\n'
    printf 'backend. The machine is shared, so the contenders alternate within\n'
    printf 'each round (the order rotates every round) and every number is the\n'
    printf 'median over %s round(s); a ratio is the median of the per-round ratios.\n\n' "$rounds"

    printf '## Targets\n\n'
    printf '| target | value | verdict |\n|---|---|---|\n'
    for level in $levels; do
      local ratio
      ratio="$(med throughput modelgate "$level" rps_vs_faster %.3f)"
      printf '| scenario 1, c=%s: throughput ≥ the faster of nginx and HAProxy | %s × | %s |\n' \
        "$level" "$ratio" "$(verdict "$ratio" '>=' 1)"
    done
    local first_level="${levels%% *}" value
    value="$(med throughput modelgate "$first_level" added_p50_us %.0f)"
    printf '| scenario 1, c=%s: p50 added over direct ≤ 100 µs | %s µs | %s |\n' \
      "$first_level" "$value" "$(verdict "$value" '<=' 100)"
    value="$(med throughput modelgate "$first_level" added_p99_us %.0f)"
    printf '| scenario 1, c=%s: p99 added over direct ≤ 500 µs | %s µs | %s |\n' \
      "$first_level" "$value" "$(verdict "$value" '<=' 500)"
    value="$(med streaming modelgate "$stream_tokens" added_delivery_us %.1f)"
    printf '| scenario 2: delay added per streamed event ≤ 50 µs | %s µs | %s |\n' \
      "$value" "$(verdict "$value" '<=' 50)"
    value="$(med cold_start modelgate - overhead_us %.0f)"
    printf '| scenario 3: cold-start overhead ≤ 10 ms | %s µs | %s |\n' \
      "$value" "$(verdict "$value" '<=' 10000)"
    value="$(worst_low flood modelgate "$flood_connections" ok %.0f)"
    printf '| scenario 4: %s of %s answered (worst run) | %s | %s |\n' "$flood_connections" \
      "$flood_connections" "$value" "$(verdict "$value" '>=' "$flood_connections")"
    value="$(worst_high flood modelgate "$flood_connections" vm_hwm_kb %.0f)"
    printf '| scenario 4: peak RSS < 200 MB (worst run) | %s MiB | %s |\n\n' \
      "$(mib_from_kb <<<"$value")" "$(verdict "$value" '<=' 195312)"

    printf '## Scenario 1: non-streamed chat completions\n\n'
    printf 'wrk, one thread, keep-alive connections, %s s per run after a %s s\n' \
      "$duration" "$warmup"
    printf 'warm-up run. The response is a 5-token chat completion of about 290 bytes.\n'
    printf 'CPU is the user plus system time of the proxy processes (for direct:\n'
    printf 'the stub) from `/proc/PID/stat`, divided by the requests.\n\n'
    printf '![requests per second and CPU per request](%s)\n\n' "$png_name"
    printf '| connections | contender | requests/s | p50 µs | p99 µs | p50 added µs | p99 added µs | CPU µs/request |\n'
    printf '|---:|---|---:|---:|---:|---:|---:|---:|\n'
    for level in $levels; do
      for contender in direct modelgate nginx haproxy; do
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$level" "$contender" \
          "$(med throughput "$contender" "$level" rps %.0f)" \
          "$(med throughput "$contender" "$level" p50_us %.0f)" \
          "$(med throughput "$contender" "$level" p99_us %.0f)" \
          "$(med throughput "$contender" "$level" added_p50_us %.0f)" \
          "$(med throughput "$contender" "$level" added_p99_us %.0f)" \
          "$(med throughput "$contender" "$level" cpu_us_per_request %.2f)"
      done
    done
    printf '\nmodelgate against the others (median of per-round ratios; above 1 is\n'
    printf 'more throughput, or more CPU per request):\n\n'
    printf '| connections | requests/s vs nginx | requests/s vs HAProxy | CPU/request vs nginx | CPU/request vs HAProxy |\n'
    printf '|---:|---:|---:|---:|---:|\n'
    for level in $levels; do
      printf '| %s | %s | %s | %s | %s |\n' "$level" \
        "$(med throughput modelgate "$level" rps_vs_nginx %.3f)" \
        "$(med throughput modelgate "$level" rps_vs_haproxy %.3f)" \
        "$(med throughput modelgate "$level" cpu_us_per_request_vs_nginx %.3f)" \
        "$(med throughput modelgate "$level" cpu_us_per_request_vs_haproxy %.3f)"
    done

    printf '\n## Scenario 2: streamed chat completions\n\n'
    printf '%s streams of %s events, one after the other on one connection, per\n' \
      "$stream_count" "$stream_tokens"
    printf 'contender and round; the stub writes one event per millisecond and stamps\n'
    printf 'each with its steady clock (`--event-timestamps`). Delivery is the\n'
    printf 'arrival time at the client minus that stamp; first event is the time\n'
    printf 'from sending the request to the first event; gap is the mean time\n'
    printf 'between consecutive token events. haproxy-no-delay is a second HAProxy\n'
    printf 'frontend with `option http-no-delay`; without it HAProxy 2.6 sends\n'
    printf 'streamed bodies with MSG_MORE, and the kernel holds the events back.\n\n'
    printf '| contender | first event µs | gap µs | delivery µs | delivery p99 µs | delivery added µs | first event added µs |\n'
    printf '|---|---:|---:|---:|---:|---:|---:|\n'
    for contender in direct modelgate nginx haproxy-no-delay haproxy; do
      printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$contender" \
        "$(med streaming "$contender" "$stream_tokens" first_event_us)" \
        "$(med streaming "$contender" "$stream_tokens" gap_us)" \
        "$(med streaming "$contender" "$stream_tokens" delivery_us)" \
        "$(med streaming "$contender" "$stream_tokens" delivery_p99_us)" \
        "$(med streaming "$contender" "$stream_tokens" added_delivery_us)" \
        "$(med streaming "$contender" "$stream_tokens" added_first_event_us)"
    done

    printf '\n## Scenario 3: cold start\n\n'
    printf 'The stub with `--startup-delay %s` (503 until then). Direct: the\n' "$cold_delay_ms"
    printf 'client starts the stub itself and polls `GET /v1/models` every 200 µs.\n'
    printf 'modelgate: a request for a stopped deployment (idle_timeout 300ms,\n'
    printf 'default health_check_interval) from sending it to its first byte.\n'
    printf 'Overhead is that first byte minus the direct spawn-to-healthy time of\n'
    printf 'the same round; after healthy is the first byte minus the gateway'"'"'s own\n'
    printf '"healthy after N ms" (whole milliseconds). %s runs.\n\n' "$cold_runs"
    printf '| measure | median |\n|---|---:|\n'
    printf '| direct: spawn to healthy | %s ms |\n' "$(med cold_start direct - healthy_us '%.1f' | ms_from_us)"
    printf '| direct: spawn to first byte of a chat completion | %s ms |\n' "$(med cold_start direct - first_byte_us | ms_from_us)"
    printf '| modelgate: log "healthy after" | %s ms |\n' "$(med cold_start modelgate - healthy_after_ms %.0f)"
    printf '| modelgate: request to first byte | %s ms |\n' "$(med cold_start modelgate - first_byte_us | ms_from_us)"
    printf '| modelgate: overhead over direct spawn to healthy | %s ms |\n' "$(med cold_start modelgate - overhead_us | ms_from_us)"
    printf '| modelgate: first byte after "healthy after" | %s ms |\n' "$(med cold_start modelgate - after_healthy_us | ms_from_us)"

    printf '\n## Scenario 4: %s requests during one cold start\n\n' "$flood_connections"
    printf 'One connection per request (at most 1000 connects in progress), all\n'
    printf 'sent while the stub loads (`--startup-delay %s`);\n' "$flood_delay_ms"
    printf '`max_held_requests_per_deployment: %s`. VmHWM is the gateway'"'"'s\n' "$flood_connections"
    printf 'peak resident memory (`/proc/PID/status`). %s run(s), each with a fresh\n' "$flood_runs"
    printf 'gateway.\n\n'
    printf '| measure | median | worst run |\n|---|---:|---:|\n'
    local metric label
    for metric in ok released instances_started other_status failed all_sent_ms last_answer_ms; do
      case "$metric" in
        ok) label="answered 200" ;;
        released) label="released by the first healthy instance (gateway log)" ;;
        instances_started) label="instances started (1 expected)" ;;
        other_status) label="answered with another status" ;;
        failed) label="connection errors" ;;
        all_sent_ms) label="all requests sent after (ms)" ;;
        last_answer_ms) label="last response after (ms)" ;;
      esac
      if [[ "$metric" == ok || "$metric" == released ]]; then
        printf '| %s | %s | %s |\n' "$label" \
          "$(med flood modelgate "$flood_connections" "$metric" %.0f)" \
          "$(worst_low flood modelgate "$flood_connections" "$metric" %.0f)"
      else
        printf '| %s | %s | %s |\n' "$label" \
          "$(med flood modelgate "$flood_connections" "$metric" %.0f)" \
          "$(worst_high flood modelgate "$flood_connections" "$metric" %.0f)"
      fi
    done
    printf '| gateway VmHWM (MiB) | %s | %s |\n' \
      "$(med flood modelgate "$flood_connections" vm_hwm_kb '%.0f' | mib_from_kb)" \
      "$(worst_high flood modelgate "$flood_connections" vm_hwm_kb '%.0f' | mib_from_kb)"

    printf '\n## Scenario 5: memory\n\n'
    printf 'Resident memory (VmRSS) of the contender processes when idle, and with\n'
    printf '%s idle keep-alive client connections that each served one request.\n\n' "$idle_connections"
    printf '| contender | RSS idle | RSS with %s connections | per 1,000 connections |\n' "$idle_connections"
    printf '|---|---:|---:|---:|\n'
    for contender in direct modelgate nginx haproxy; do
      printf '| %s | %s MiB | %s MiB | %s MiB |\n' "$contender" \
        "$(med memory "$contender" - rss_idle_kb '%.0f' | mib_from_kb)" \
        "$(med memory "$contender" - rss_idle_connections_kb '%.0f' | mib_from_kb)" \
        "$(med memory "$contender" - rss_per_1000_connections_kb '%.0f' | mib_from_kb)"
    done

    printf '\n## Commands\n\n```sh\n'
    cat "$commands_file"
    printf '```\n\n## Configurations\n\n'
    local file
    for file in gateway.yaml nginx.conf haproxy.cfg gateway-cold.yaml gateway-flood.yaml; do
      if [[ -f "$work_dir/$file" ]]; then
        printf '`%s`:\n\n```\n' "$file"
        sed "s|$work_dir|WORK|g; s|$stub_bin|modelgate-stub|g" "$work_dir/$file"
        printf '```\n\n'
      fi
    done
    if ((${#findings[@]} > 0)); then
      printf '## Findings\n\n'
      printf -- '- %s\n' "${findings[@]}"
      printf '\n'
    fi
    if ((${#problems[@]} > 0)); then
      printf '## Problems during the run\n\n'
      printf -- '- %s\n' "${problems[@]}"
    fi
  } >"$out"
}

ms_from_us() {
  awk '{ if ($1 == "n/a") { print $1 } else { printf "%.2f\n", $1 / 1000 } }'
}

mib_from_kb() {
  awk '{ if ($1 == "n/a") { print $1 } else { printf "%.1f\n", $1 / 1024 } }'
}
